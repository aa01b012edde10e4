"""End to end: a client with a valid token reaches its own worker and completes a real Claude
Code turn, in both modes (single: relay-worker subprocess; multi: a container on a private dockerd with
host networking). Also: the three ways to present a token, and the generated token of single mode.
"""
from __future__ import annotations

import json
import re
import uuid

import pytest
from websockets.sync.client import connect as ws_connect

import harness
from fakes.fake_anthropic import Text

from labsupport import TOKENS, FakeAnthropicOn, claude_env, multi_env, single_env, statuses, write_env_file

TURN = 90.0


def tag() -> str:
    return uuid.uuid4().hex[:8]


def run_turn(client: harness.WSClient, fake_api, folder: str | None = None) -> dict:
    t = tag()
    fake_api.script(f"hello-{t}", Text(f"Hi {t} from the fake model"))
    hs = {"tool": "claude", "session_id": f"S-{t}"}
    if folder is not None:
        hs["folder"] = folder
    client.send_json(hs)
    start = client.wait_type("session_start", timeout=TURN)
    client.send_text(f"hello-{t}")
    client.wait_type("input_ack", timeout=TURN)
    resp = client.wait_type("response", "error", timeout=TURN)
    assert resp["type"] == "response", resp
    assert f"Hi {t}" in resp["text"]
    return start


@pytest.fixture(scope="module")
def single(labs, lab_dir, tokens_file, fake_api):
    return labs.start(single_env(lab_dir, tokens_file, fake_api), name="single")


def test_single_mode_claude_turn(single, fake_api, lab_dir):
    with single.client("alice") as c:
        start = run_turn(c, fake_api)
        # Progress arrives in-band before the worker's first event, as ordinary status events.
        st = statuses(c)
        assert st[-1] == "lab.ready", st
        assert c.events.index(start) > max(i for i, e in enumerate(c.events) if e.get("status") == "lab.ready")
        # The worker is confined to the user's workspace, which is its default folder.
        assert start["metadata"]["folder"] == str(lab_dir / "ws" / "alice")
    w = single.worker("alice")
    assert w is not None and w["state"] == "running" and w["id"].startswith("pid:")
    m = single.metrics()
    assert re.search(r'lab_turns_total\{tool="claude"\} [1-9]', m), m
    assert 'lab_workers{state="running"} 1' in m


def test_token_in_header_query_and_cookie(single, fake_api):
    tok = TOKENS["bob"]
    url = single.ws_url()
    for kw in ({"additional_headers": {"Authorization": f"Bearer {tok}"}},
               {"additional_headers": {"Cookie": f"other=1; lab_token={tok}"}}):
        with ws_connect(url, open_timeout=10, proxy=None, **kw) as ws:
            ws.send(json.dumps({"tool": "claude"}))
            while True:
                ev = json.loads(ws.recv(timeout=TURN))
                if ev["type"] == "session_start":
                    assert ev["metadata"]["folder"].endswith("/ws/bob")
                    break
    with harness.WSClient(single.ws_url(tok)) as c:
        c.send_json({"tool": "claude"})
        assert c.wait_type("session_start", timeout=TURN)["metadata"]["folder"].endswith("/ws/bob")


def test_generated_token_single_loopback(labs, lab_dir, fake_api, tokens_file):
    env = single_env(lab_dir, tokens_file, fake_api)
    for k in ("LAB_TOKENS_FILE", "LAB_JWT_SECRET"):
        env.pop(k)
    env["LAB_WORKSPACE_ROOT"] = str(lab_dir / "ws-generated")
    lab = labs.start(env, name="generated")
    urls = [l.split("open ", 1)[1] for l in lab.stdout_lines if "labctrl: open " in l]
    assert urls and "/ws?token=" in urls[0], lab.stdout_lines
    url = urls[0].replace("ws://127.0.0.1:", "ws://127.0.0.1:")  # printed with the real port
    with harness.WSClient(url) as c:
        start = run_turn(c, fake_api)
        assert start["metadata"]["folder"] == str(lab_dir / "ws-generated" / "local")
    with pytest.raises(Exception):
        harness.WSClient(lab.ws_url("wrong-token-000000000000000"))
    lab.stop()


def test_multi_mode_claude_turn_in_container(labs, lab_dir, tokens_file, fake_api, dockerd):
    lab = labs.start(multi_env(lab_dir, tokens_file, fake_api, dockerd), name="multi-e2e")
    try:
        with lab.client("alice") as c:
            start = run_turn(c, fake_api)
            assert start["metadata"]["folder"] == "/home/labuser"
            assert statuses(c)[:2] == ["lab.creating", "lab.starting"], statuses(c)
        cs = dockerd.containers()
        assert len(cs) == 1 and cs[0]["Names"] == "lab-alice", cs
        info = dockerd.inspect("lab-alice")
        hc = info["HostConfig"]
        assert hc["CapDrop"] == ["ALL"] and hc["CapAdd"] == ["NET_BIND_SERVICE"]
        assert "no-new-privileges" in hc["SecurityOpt"]
        assert hc["NetworkMode"] == "host" and not hc.get("PortBindings")
        assert hc["Memory"] == 1 << 30
        assert info["Config"]["User"] == "labuser"
        labels = info["Config"]["Labels"]
        assert labels["lab.managed-by"] == "labctrl" and labels["lab.user"] == "alice" and labels["lab.spec-hash"]
        # Claude wrote its state into the user's workspace, owned by the container user.
        ws = lab_dir / "ws-multi" / "alice"
        assert (ws / ".claude.json").exists() or (ws / ".claude").exists()
        assert ws.stat().st_uid == 1000
    finally:
        lab.stop()
        dockerd.remove_managed()


def test_multi_mode_on_a_docker_network(labs, lab_dir, tokens_file, fake_api, dockerd):
    """The production layout: containers on LAB_NETWORK with no published ports, reached at the address
    `inspect` reports on that network (the bridge lives inside the test's private namespace)."""
    created = dockerd.docker("network", "create", "--driver", "bridge", "lab-test-net", check=False)
    if created.returncode != 0 and "already exists" not in created.stderr:
        pytest.skip(f"cannot create a bridge network here: {created.stderr.strip()}")
    env = multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_NETWORK="lab-test-net", LAB_WORKSPACE_ROOT=str(lab_dir / "ws-net"))
    # The model API must be reachable from the bridge: it listens on the bridge gateway, not on loopback.
    gateway = dockerd.inspect_network("lab-test-net")["IPAM"]["Config"][0]["Gateway"]
    with FakeAnthropicOn(gateway) as bridged:
        env["LAB_WORKER_ENV_FILE"] = str(write_env_file(lab_dir / "worker-net.env", claude_env(bridged)))
        lab = labs.start(env, name="multi-net")
        try:
            with lab.client("alice") as c:
                run_turn(c, bridged)
            info = dockerd.inspect("lab-alice")
            ip = info["NetworkSettings"]["Networks"]["lab-test-net"]["IPAddress"]
            assert lab.worker("alice")["address"] == f"{ip}:9000"
            assert not info["HostConfig"].get("PortBindings") and info["HostConfig"]["NetworkMode"] == "lab-test-net"
        finally:
            lab.stop()
            dockerd.remove_managed()
            dockerd.docker("network", "rm", "lab-test-net", check=False)
