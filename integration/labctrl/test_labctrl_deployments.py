"""Scoped adoption and safe container defaults, on a private dockerd.

- Two labctrl instances with different LAB_DEPLOYMENT on one engine: containers are named and labelled
  by deployment; each lists, adopts, removes and watches only its own (a restart leaves the other lab's
  running and stopped containers, and unlabelled legacy ones, alone; the other lab's container deaths
  are not its deaths).
- The default container is read-only with a tmpfs /tmp, memory and CPU limited, and the real claude
  (through labctrl) and the real codex (same hardening, codex bind-mounted) complete a turn in it.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

import harness
from fakes.fake_anthropic import Text
from fakes.fake_openai import FakeOpenAI, Text as OpenAIText

from test_codex_real import codex_config
from labsupport import ADMIN_TOKEN, TOKENS, claims, jwt_hs256, multi_env, statuses, wait_until

TURN = 120.0


def tag() -> str:
    return uuid.uuid4().hex[:8]


def start_session(lab, token: str) -> harness.WSClient:
    c = harness.WSClient(lab.ws_url(token))
    c.send_json({"tool": "claude"})
    c.wait_type("session_start", timeout=TURN)
    return c


def claude_turn(c: harness.WSClient, fake_api) -> None:
    t = tag()
    fake_api.script(f"hello-{t}", Text(f"Hi {t} from the fake model"))
    c.send_text(f"hello-{t}")
    resp = c.wait_type("response", "error", timeout=TURN)
    assert resp["type"] == "response" and f"Hi {t}" in resp["text"], resp


def names(dockerd, label: str = "lab.managed-by=labctrl") -> dict[str, str]:
    return {c["Names"]: c["State"] for c in dockerd.containers(label)}


def test_two_deployments_on_one_engine_leave_each_other_alone(labs, lab_dir, tokens_file, fake_api, dockerd):
    def env(dep: str) -> dict[str, str]:
        return multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_DEPLOYMENT=dep, LAB_CONTROLLER_ID=f"{dep}-1",
                         LAB_WORKSPACE_ROOT=str(lab_dir / f"ws-{dep}"))

    carol = jwt_hs256(claims("carol"))
    # A container of an older controller (managed label, no deployment label): nobody's to remove.
    # One of them holds the very name east would give erin: that one is east's old container, removed.
    for name, user in (("legacy-dave", "dave"), ("east-erin", "erin")):
        dockerd.docker("create", "--name", name, "--label", "lab.managed-by=labctrl", "--label", f"lab.user={user}",
                       "--entrypoint", "true", os.environ.get("LAB_WORKER_IMAGE", "lab-worker:test"))
    east = labs.start(env("east"), name="east-1")
    west = labs.start(env("west"), name="west-1")
    try:
        assert "legacy-dave" in names(dockerd) and "east-erin" not in names(dockerd)
        for lab, token in ((east, TOKENS["alice"]), (east, TOKENS["bob"]), (west, TOKENS["alice"]), (west, carol)):
            start_session(lab, token).close()
        assert names(dockerd, "lab.deployment=east") == {"east-alice": "running", "east-bob": "running"}
        assert names(dockerd, "lab.deployment=west") == {"west-alice": "running", "west-carol": "running"}
        assert sorted(w["user"] for w in east.workers()) == ["alice", "bob"]
        assert sorted(w["user"] for w in west.workers()) == ["alice", "carol"]
        info = dockerd.inspect("east-alice")
        assert info["Config"]["Labels"]["lab.deployment"] == "east"
        west_ids = {c["Names"]: c["ID"] for c in dockerd.containers("lab.deployment=west")}

        # West's carol stops while west is down; east restarts meanwhile: it adopts its own two and
        # removes nothing of west's (running or stopped) nor the legacy container.
        assert west.stop() == 0
        dockerd.docker("stop", "-t", "1", "west-carol")
        assert east.stop() == 0
        east = labs.start(env("east"), name="east-2")
        ws = {w["user"]: w for w in east.workers()}
        assert sorted(ws) == ["alice", "bob"] and all(w["adopted"] for w in ws.values()), ws
        assert ws["alice"]["id"] == info["Id"]
        assert names(dockerd, "lab.deployment=west") == {"west-alice": "running", "west-carol": "exited"}
        assert "legacy-dave" in names(dockerd)

        # West restarts: its own stopped leftover goes, its running one is adopted, east's stay.
        west = labs.start(env("west"), name="west-2")
        assert [(w["user"], w["id"]) for w in west.workers()] == [("alice", dockerd.inspect("west-alice")["Id"])]
        assert dockerd.inspect("west-alice")["Id"].startswith(west_ids["west-alice"])
        assert names(dockerd, "lab.deployment=west") == {"west-alice": "running"}
        assert names(dockerd, "lab.deployment=east") == {"east-alice": "running", "east-bob": "running"}

        # A death in west is west's: west drops its alice, east's alice keeps her worker (no recreate).
        dockerd.docker("kill", "west-alice")
        wait_until(lambda: west.worker("alice") is None, 30, "west to notice its alice's container died")
        with east.client("alice") as c:
            c.send_json({"tool": "claude"})
            c.wait_type("session_start", timeout=TURN)
            assert statuses(c) == ["lab.ready"], "east's alice must still have her worker"
            claude_turn(c, fake_api)
        assert east.worker("alice")["id"] == info["Id"]

        # The admin stop removes only this lab's container of that user.
        start_session(west, TOKENS["alice"]).close()
        status, _ = east.http("DELETE", "/v1/workers/alice", token=ADMIN_TOKEN)
        assert status == 200, status
        wait_until(lambda: "east-alice" not in names(dockerd), 30, "east-alice to be removed")
        assert names(dockerd, "lab.deployment=west")["west-alice"] == "running"
        assert "legacy-dave" in names(dockerd)
    finally:
        east.stop()
        west.stop()
        dockerd.remove_managed()


# ---- safe defaults: read-only root, tmpfs /tmp, limits, with the real CLIs ---------------------------


def test_default_container_is_read_only_and_limited_and_claude_works(labs, lab_dir, tokens_file, fake_api, dockerd):
    env = multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_DEPLOYMENT="ro", LAB_WORKSPACE_ROOT=str(lab_dir / "ws-ro"))
    del env["LAB_CONTAINER_MEMORY"]  # the defaults under test
    lab = labs.start(env, name="ro")
    long_user = "u" * 61 + "_Xy"  # 64 characters: used to make an invalid host name
    try:
        with harness.WSClient(lab.ws_url(jwt_hs256(claims(long_user)))) as c:
            c.send_json({"tool": "claude"})
            c.wait_type("session_start", timeout=TURN)
            claude_turn(c, fake_api)
        (cid,) = [x["ID"] for x in dockerd.containers(f"lab.user={long_user}")]
        info = dockerd.inspect(cid)
        hc = info["HostConfig"]
        assert hc["ReadonlyRootfs"] is True
        assert list(hc["Tmpfs"]) == ["/tmp"] and "size=536870912" in hc["Tmpfs"]["/tmp"]
        assert hc["Memory"] == 2 << 30 and hc["MemorySwap"] == 2 << 30
        ncpu = int(dockerd.docker("info", "--format", "{{.NCPU}}").stdout.strip())
        assert hc["NanoCpus"] == min(2, ncpu) * 10**9
        assert info["Name"] == f"/ro-{long_user}"
        # The root is read-only for the worker's user, /tmp and $HOME are writable.
        assert dockerd.docker("exec", cid, "sh", "-c", "touch /usr/local/x", check=False).returncode != 0
        assert dockerd.docker("exec", cid, "sh", "-c", "touch /tmp/x && touch $HOME/x").returncode == 0
        assert (lab_dir / "ws-ro" / long_user / "x").exists()
        # No docker-init: the worker is PID 1 and reaps orphans re-parented to it (here: of a docker exec).
        assert dockerd.docker("exec", cid, "cat", "/proc/1/comm").stdout.strip() == "relay-worker"
        orphan = int(dockerd.docker("exec", cid, "sh", "-c", "sh -c 'sleep 0.3; true' >/dev/null 2>&1 & echo $!").stdout.strip())
        wait_until(lambda: dockerd.docker("exec", cid, "test", "-e", f"/proc/{orphan}", check=False).returncode != 0, 15,
                   f"the worker (PID 1) to reap orphan {orphan}")
    finally:
        lab.stop()
        dockerd.remove_managed()


def test_long_and_odd_user_ids_get_valid_host_names_on_a_bridge(labs, lab_dir, tokens_file, fake_api, dockerd):
    """On a bridge network the container gets a host name; ids of 61-64 characters (and with `_`, `.` or
    upper case) used to make an invalid one. Pre-warmed through the admin API: the worker must run."""
    net = f"lab-h3-{tag()}"
    env = multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_DEPLOYMENT="hn", LAB_NETWORK=net,
                    LAB_WORKSPACE_ROOT=str(lab_dir / "ws-hn"))
    lab = labs.start(env, name="hn")  # creates the network (inter-container traffic off)
    users = ["a" * 61, "b" * 64, "Carol." + "c" * 58, "dave_x-"]
    try:
        for u in users:
            status, body = lab.http("POST", f"/v1/workers/{u}", ADMIN_TOKEN)
            assert status == 200 and body["state"] == "running", (u, body)
        hosts = {}
        for u in users:
            (cid,) = [x["ID"] for x in dockerd.containers(f"lab.user={u}")]
            hosts[u] = dockerd.inspect(cid)["Config"]["Hostname"]
            inside = dockerd.docker("exec", cid, "cat", "/etc/hostname").stdout.strip()
            assert inside == hosts[u]
        assert hosts["a" * 61] == "a" * 61
        for u, h in hosts.items():
            assert 1 <= len(h) <= 63 and h[0] != "-" and h[-1] != "-", (u, h)
            assert all(ch.isdigit() or "a" <= ch <= "z" or ch == "-" for ch in h), (u, h)
        assert len(set(hosts.values())) == len(users)
    finally:
        lab.stop()
        dockerd.remove_managed()
        dockerd.docker("network", "rm", net, check=False)

def test_real_codex_works_in_a_read_only_container(labs, lab_dir, tokens_file, fake_api, dockerd, tmp_path: Path):
    """The worker image has no codex: the real binary is bind-mounted into a container given the hardening
    labctrl gives its own (read from a labctrl-made container), and one codex turn runs through the worker."""
    codex = Path(os.environ.get("CODEX_BIN") or harness.LAB_CACHE / "clis/openai-codex-cli-bin-0.163.0/bin/codex")
    if not codex.exists():
        pytest.fail(f"real codex binary not found at {codex}: run scripts/setup.sh", pytrace=False)
    env = multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_DEPLOYMENT="rocodex", LAB_WORKSPACE_ROOT=str(lab_dir / "ws-rocodex"))
    lab = labs.start(env, name="rocodex")
    name = f"rocodex-run-{tag()}"
    try:
        start_session(lab, TOKENS["bob"]).close()
        (ref,) = [x["ID"] for x in dockerd.containers("lab.deployment=rocodex")]
        hc = dockerd.inspect(ref)["HostConfig"]
        assert hc["ReadonlyRootfs"] is True
        home = tmp_path / "home"
        (home / ".codex").mkdir(parents=True)
        with FakeOpenAI() as openai:
            (home / ".codex" / "config.toml").write_text(codex_config(openai.base_url))
            os.chown(home, 1000, 1000)
            os.chown(home / ".codex", 1000, 1000)
            port = harness.free_port()
            args = ["run", "-d", "--name", name, "--network", "host", "--read-only", "--user", "labuser",
                    "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                    "-e", "HOME=/home/labuser", "-e", "CODEX_HOME=/home/labuser/.codex", "-e", "OPENAI_API_KEY=dummy",
                    "-v", f"{home}:/home/labuser", "-v", f"{codex}:/usr/local/bin/codex:ro"]
            for path, opts in hc["Tmpfs"].items():
                args += ["--tmpfs", f"{path}:{opts}"]
            args += ["--entrypoint", "relay-worker", env["LAB_IMAGE"],
                     "serve", "--host", "127.0.0.1", "--port", str(port), "--workspace-root", "/home/labuser"]
            dockerd.docker(*args)
            if not harness.wait_until(lambda: _listening(port), 30):
                logs = dockerd.docker("logs", name, check=False)
                pytest.fail(f"worker did not listen:\n{logs.stdout}\n{logs.stderr}", pytrace=False)
            t = tag()
            prompt = f"Say hello [{t}]"
            openai.script(prompt, OpenAIText(f"Hello read-only [{t}]"))
            with harness.WSClient(f"ws://127.0.0.1:{port}/") as c:
                c.send_json({"tool": "codex", "folder": "/home/labuser"})
                c.wait_type("session_start", timeout=TURN)
                c.wait_for(lambda e: e.get("type") == "status" and e.get("status") == "thread_started", TURN, what="thread_started")
                c.send_json({"text": prompt})
                c.wait_for(lambda e: e.get("type") == "status" and e.get("status") == "completed"
                           and (e.get("metadata") or {}).get("method") == "turn/completed", TURN, what="turn/completed")
                got = "".join(e.get("text") or "" for e in c.of_type("assistant_message"))
                assert f"Hello read-only [{t}]" in got, c.events[-10:]
    finally:
        dockerd.docker("rm", "-f", name, check=False)
        lab.stop()
        dockerd.remove_managed()


def _listening(port: int) -> bool:
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
