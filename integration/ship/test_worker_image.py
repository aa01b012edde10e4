"""The Dockerfile's `worker` stage, built with `docker build` (BuildKit) from
scripts/dist.sh binaries on the locally imported Debian base, runs the end-to-end Claude turn of
labctrl/test_labctrl_e2e.py in multi mode (private dockerd, host networking, real claude + fake model API on loopback); and
compose.yaml is valid for Compose 1.29 and comes up with the locally built images.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

import harness
from fakes.fake_anthropic import Text, ToolUse
from labsupport import JWT_SECRET, REPO, claims, claude_env, jwt_hs256, wait_until, write_env_file

from shipsupport import Engine, ShipImages, sha256_file

TURN = 90.0
ADMIN = "ship-admin-token-0123456789abcdef"


def tag() -> str:
    return uuid.uuid4().hex[:8]


def text_turn(c: harness.WSClient, fake_api, handshake: dict) -> dict:
    """Handshake, one scripted prompt, the `response`; returns session_start."""
    t = tag()
    fake_api.script(f"hello-{t}", Text(f"Hi {t} from the fake model"))
    c.send_json(handshake)
    start = c.wait_type("session_start", timeout=TURN)
    c.send_text(f"hello-{t}")
    end = c.wait_type("response", "error", timeout=TURN)
    assert end["type"] == "response" and f"Hi {t}" in end["text"], end
    return start


def write_turn(c: harness.WSClient, fake_api, container_path: str, host_path: Path) -> None:
    """A Write tool call that needs permission: allow it, see the result, the answer and the file."""
    t = tag()
    prompt = f"write-{t}"
    fake_api.script(prompt, [ToolUse("Write", {"file_path": container_path, "content": f"from the image {t}\n"}),
                             Text(f"Wrote it [{t}].")])
    c.send_text(prompt)
    perm = c.wait_type("permission_request", timeout=TURN)
    assert perm["tool"] == "Write" and perm["args"]["file_path"] == container_path, perm
    assert not host_path.exists()
    c.send_json({"type": "permission_response", "request_id": perm["request_id"], "behavior": "allow",
                 "updatedInput": perm["args"], "tool_use_id": perm["tool_use_id"]})
    c.wait_for(lambda e: e.get("type") == "tool_result" and e.get("tool_use_id") == perm["tool_use_id"], TURN, "tool_result")
    end = c.wait_type("response", "error", timeout=TURN)
    assert end["type"] == "response" and end["text"] == f"Wrote it [{t}].", end
    assert host_path.read_text() == f"from the image {t}\n"


# ---- the images ---------------------------------------------------------------------------------


def test_worker_stage_image(engine: Engine, ship_images: ShipImages):
    """The worker stage: non-root labuser, relay-worker (the dist/ binary) serving on LAB_CONTAINER_PORT."""
    info = engine.inspect(ship_images.worker)
    cfg = info["Config"]
    assert cfg["User"] == "labuser"
    assert "LAB_CONTAINER_PORT=9000" in cfg["Env"] and "HOME=/home/labuser" in cfg["Env"]
    assert cfg["WorkingDir"] == "/home/labuser"
    assert "relay-worker serve" in " ".join(cfg["Entrypoint"]) and "${LAB_CONTAINER_PORT}" in " ".join(cfg["Entrypoint"])
    # Built FROM the local base: its layers are the first layers of the image (no Swift image involved).
    base_layers = engine.inspect(os.environ.get("LAB_BASE_IMAGE", "lab-base:bookworm"))["RootFS"]["Layers"]
    assert info["RootFS"]["Layers"][:len(base_layers)] == base_layers
    out = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "sh", ship_images.worker, "-c",
                        "id -un; id -u; sha256sum /usr/local/bin/relay-worker; relay-worker --help").stdout
    lines = out.splitlines()
    assert lines[0] == "labuser" and lines[1] == "1000", out
    assert lines[2].split()[0] == sha256_file(ship_images.dist / "bin/relay-worker"), out
    assert "OVERVIEW: WebSocket relay" in out and "serve" in out
    # The controller stage runs labctrl with every library it needs (libcurl included, from dist/syslib).
    out = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "sh", ship_images.controller, "-c",
                        "ldd /usr/local/bin/labctrl | grep -c 'not found' || true; labctrl --print-config | grep LAB_HOST").stdout
    assert out.splitlines() == ["0", "LAB_HOST=0.0.0.0"], out


def test_image_entrypoint_serves_claude(engine: Engine, ship_images: ShipImages, fake_api, tmp_path: Path):
    """`docker run` of the image with its own entrypoint: the worker on LAB_CONTAINER_PORT, sessions in $HOME."""
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 1000, 1000)
    port = harness.free_port()
    env_file = write_env_file(tmp_path / "worker.env", claude_env(fake_api))
    name = f"lab-ship-run-{tag()}"
    token = os.urandom(32).hex()  # the entrypoint listens on 0.0.0.0, which needs a token
    engine.docker("run", "-d", "--name", name, "--network", "host", "--cap-drop", "ALL",
                  "--security-opt", "no-new-privileges", "-e", f"LAB_CONTAINER_PORT={port}", "--env-file", str(env_file),
                  "-e", f"RELAY_WORKER_TOKEN={token}", "-v", f"{home}:/home/labuser", ship_images.agent)
    try:
        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        if not harness.wait_until(listening, 30):
            logs = engine.docker("logs", name, check=False)
            pytest.fail(f"the worker did not listen on {port}:\n{logs.stdout}\n{logs.stderr}", pytrace=False)
        with pytest.raises(Exception):  # no token: refused (401)
            harness.WSClient(f"ws://127.0.0.1:{port}/")
        with harness.WSClient(f"ws://127.0.0.1:{port}/", headers={"Authorization": f"Bearer {token}"}) as c:
            start = text_turn(c, fake_api, {"tool": "claude"})
            assert start["metadata"]["folder"] == "/home/labuser"
            write_turn(c, fake_api, "/home/labuser/entrypoint.txt", home / "entrypoint.txt")
        assert (home / "entrypoint.txt").stat().st_uid == 1000
    finally:
        engine.docker("rm", "-f", name, check=False)


def test_multi_mode_claude_turn_in_shipped_image(labs, lab_dir: Path, fake_api, engine: Engine, ship_images: ShipImages,
                                                 user_id: str):
    """The LabCtrl end-to-end turn, with LAB_IMAGE made FROM the Dockerfile's worker stage."""
    env_file = write_env_file(lab_dir / "ship-worker.env", claude_env(fake_api))
    lab = labs.start({
        "LAB_MODE": "multi",
        "LAB_DOCKER_HOST": engine.host,
        "LAB_IMAGE": ship_images.agent,
        "LAB_NETWORK": "host",
        "LAB_WORKSPACE_ROOT": str(lab_dir / "ws-ship"),
        "LAB_JWT_SECRET": JWT_SECRET,
        "LAB_WORKER_ENV_FILE": str(env_file),
        "LAB_CONTAINER_MEMORY": "1g",
        "LAB_WORKER_STOP_GRACE_SECS": "2",
        "LAB_CONTROLLER_ID": "ship-test",
    }, name="ship-multi")
    token = jwt_hs256(claims(user_id))
    try:
        with harness.WSClient(lab.ws_url(token)) as c:
            start = text_turn(c, fake_api, {"tool": "claude", "session_id": f"S-{tag()}"})
            assert start["metadata"]["folder"] == "/home/labuser"
            st = [e.get("status") for e in c.events if str(e.get("status", "")).startswith("lab.")]
            assert st[:2] == ["lab.creating", "lab.starting"] and "lab.ready" in st, st
            write_turn(c, fake_api, "/home/labuser/shipped.txt", lab_dir / "ws-ship" / user_id / "shipped.txt")
        cs = engine.containers(f"lab.user={user_id}")
        assert len(cs) == 1, cs
        info = engine.inspect(cs[0]["ID"])
        assert info["Config"]["Image"] == ship_images.agent
        assert info["Image"] == engine.image_id(ship_images.agent)
        assert info["HostConfig"]["NetworkMode"] == "host" and info["Config"]["User"] == "labuser"
        # The turn above ran on the default read-only root file system, /tmp a tmpfs.
        assert info["HostConfig"]["ReadonlyRootfs"] is True and list(info["HostConfig"]["Tmpfs"]) == ["/tmp"]
        assert info["Name"] == f"/ship-test-{user_id}"
        # The worker that answered is the Dockerfile's relay-worker (dist/bin), not some other build.
        out = engine.docker("exec", cs[0]["ID"], "sha256sum", "/usr/local/bin/relay-worker").stdout
        assert out.split()[0] == sha256_file(ship_images.dist / "bin/relay-worker")
        ws = lab_dir / "ws-ship" / user_id
        assert (ws / "shipped.txt").stat().st_uid == 1000
    finally:
        lab.stop()
        engine.remove_user_containers(user_id)


# ---- compose.yaml ---------------------------------------------------------------------------------


def compose_cli() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose (Compose 1.29, Debian) not installed: scripts/setup.sh", pytrace=False)
    return exe


def compose(engine: Engine, project_dir: Path, project: str, env: dict[str, str], *args: str,
            timeout: float = 180.0, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [compose_cli(), "--no-ansi", "--project-directory", str(project_dir), "-p", project,
           "-f", str(REPO / "compose.yaml"), *args]
    r = subprocess.run(cmd, env=engine.env(**env), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}", pytrace=False)
    return r


def compose_project(tmp_path: Path, engine: Engine, images: ShipImages | None = None) -> tuple[Path, dict[str, str]]:
    """A project folder with an env file made from env.example (as the README says), plus the overrides
    a test needs: its own socket, workspace root, port and network."""
    project_dir = tmp_path / "compose"
    (project_dir / "config").mkdir(parents=True)
    # Files named in the env file live in ./config, mounted at /etc/lab (see compose.yaml).
    (project_dir / "config" / "worker.env").write_text("SHIP_MARKER=from-config\n")
    example = (REPO / "env.example").read_text()
    (project_dir / "lab.env").write_text(example + f"\nLAB_JWT_SECRET={JWT_SECRET}\nLAB_ADMIN_TOKEN={ADMIN}\n"
                                         "LAB_WORKER_ENV_FILE=/etc/lab/worker.env\n")
    ws = tmp_path / "workspaces"
    ws.mkdir()
    env = {
        "LAB_ENV_FILE": str(project_dir / "lab.env"),
        "LAB_WORKSPACE_ROOT": str(ws),
        "LAB_DOCKER_SOCKET": engine.host.removeprefix("unix://"),
        "LAB_PUBLISH": f"127.0.0.1:{harness.free_port()}",
        "LAB_NETWORK": f"lab-ship-{tag()}",
    }
    if images:
        env.update(LAB_IMAGE=images.agent, LAB_CONTROLLER_IMAGE=images.controller)
    return project_dir, env


def test_compose_file_is_valid(engine: Engine, tmp_path: Path):
    """`docker-compose config` (1.29) accepts compose.yaml and resolves it as documented."""
    project_dir, env = compose_project(tmp_path, engine)
    r = compose(engine, project_dir, "labcheck", env, "config")
    out = r.stdout
    assert "lab.env" not in r.stderr and "WARNING" not in r.stderr, r.stderr
    for needle in ("target: controller", "target: worker", f"name: {env['LAB_NETWORK']}", "LAB_MODE: multi",
                   f"LAB_NETWORK: {env['LAB_NETWORK']}", f"{env['LAB_DOCKER_SOCKET']}:/var/run/docker.sock",
                   f"{env['LAB_WORKSPACE_ROOT']}:{env['LAB_WORKSPACE_ROOT']}", "LAB_ALLOWED_TOOLS:",
                   f"{project_dir}/config:/etc/lab:ro", "LAB_WORKER_ENV_FILE: /etc/lab/worker.env"):
        assert needle in out, f"{needle!r} not in:\n{out}"
    assert "- build-only" in out  # the worker image is built, never started by `up` (checked below)


def test_compose_up_with_local_images(engine: Engine, ship_images: ShipImages, tmp_path: Path, user_id: str):
    """compose.yaml brought up (build skipped) against the private dockerd: /healthz, /readyz, the container's
    health check, a pre-warmed worker on the compose network, and a WebSocket session through the
    published port."""
    project_dir, env = compose_project(tmp_path, engine, ship_images)
    project = f"labship{tag()}"
    base = f"http://{env['LAB_PUBLISH']}"
    try:
        compose(engine, project_dir, project, env, "up", "-d", "--no-build")
        ctl = compose(engine, project_dir, project, env, "ps", "-q", "labctrl").stdout.strip()
        assert ctl
        # Only the controller runs: the worker-image service is in the build-only profile.
        running = engine.docker("ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
        assert running == [ctl], running

        def get(path: str, token: str | None = None, method: str = "GET") -> tuple[int, str]:
            import urllib.error
            import urllib.request
            req = urllib.request.Request(base + path, method=method)
            if token:
                req.add_header("Authorization", f"Bearer {token}")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(req, timeout=60) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
            except OSError as e:
                return 0, str(e)

        if not harness.wait_until(lambda: get("/healthz")[0] == 200, 60, 0.2):
            logs = engine.docker("logs", ctl, check=False)
            pytest.fail(f"/healthz never answered:\n{logs.stdout[-3000:]}\n{logs.stderr[-3000:]}", pytrace=False)
        assert get("/healthz") == (200, "ok\n")
        assert get("/readyz") == (200, "ready\n")
        info = engine.inspect(ctl)
        assert info["Config"]["Image"] == ship_images.controller
        assert sorted(info["NetworkSettings"]["Networks"]) == sorted([f"{project}_default", env["LAB_NETWORK"]])
        # The health check compose declares works in the image (no curl there: bash /dev/tcp).
        hc = info["Config"]["Healthcheck"]["Test"]
        assert hc[0] == "CMD"
        assert engine.docker("exec", ctl, *hc[1:], check=False).returncode == 0
        # Admin pre-warm: the controller (in its container) starts a user container on LAB_NETWORK.
        status, body = get(f"/v1/workers/{user_id}", ADMIN, "POST")
        assert status == 200, body
        worker = json.loads(body)
        assert worker["state"] == "running", worker
        (cid,) = [c["ID"] for c in engine.containers(f"lab.user={user_id}")]
        winfo = engine.inspect(cid)
        assert list(winfo["NetworkSettings"]["Networks"]) == [env["LAB_NETWORK"]]
        assert "SHIP_MARKER=from-config" in winfo["Config"]["Env"]  # LAB_WORKER_ENV_FILE read from ./config
        assert not winfo["HostConfig"].get("PortBindings")
        # A user's WebSocket through the published port reaches that worker.
        with harness.WSClient(f"ws://{env['LAB_PUBLISH']}/ws?token={jwt_hs256(claims(user_id))}") as c:
            c.send_json({"tool": "claude"})
            start = c.wait_type("session_start", timeout=TURN)
            assert start["metadata"]["folder"] == "/home/labuser"
        assert (Path(env["LAB_WORKSPACE_ROOT"]) / user_id).stat().st_uid == 1000
    finally:
        engine.remove_user_containers(user_id)
        compose(engine, project_dir, project, env, "down", "--remove-orphans", "-t", "5", check=False)
    assert not engine.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").stdout.strip()
    assert engine.docker("network", "ls", "-q", "--filter", f"name={env['LAB_NETWORK']}").stdout.strip() == ""
