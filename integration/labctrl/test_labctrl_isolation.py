"""Worker access and single-mode isolation.

- Every worker requires its own token (made by labctrl, passed in its environment, scrubbed there):
  another local process (single mode) or another user's container (multi mode) that connects to a
  worker's port, with or without knowing which port is whose, is refused; so is a browser-style upgrade
  with a foreign Origin.
- labctrl and its workers are non-dumpable: a process of the same OS user (what an agent is in single
  mode) cannot read their /proc/<pid>/environ, where LAB_ADMIN_TOKEN / LAB_JWT_SECRET live.
- Single mode with several identities needs LAB_SINGLE_SHARED_ACCOUNT=true.
"""
from __future__ import annotations

import base64
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from labsupport import ADMIN_TOKEN, TOKENS, LabCtrl, labctrl_bin, multi_env, single_env, statuses, wait_until
from test_labctrl_e2e import run_turn

NOBODY = 65534


def raw_upgrade(host: str, port: int, headers: dict[str, str] | None = None, timeout: float = 5.0) -> int:
    """Sends a WebSocket upgrade over a plain socket and returns the HTTP status code (101 = upgraded)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET / HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    assert m, data
    return int(m.group(1))


def http_status(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> int:
    req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
    req += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(req.encode())
        data = s.recv(4096)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    assert m, data
    return int(m.group(1))


def listening_loopback_ports() -> set[int]:
    """What an attacker on this host sees without guessing: every TCP port listening on loopback."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state = parts[1], parts[3]
            if state == "0A":  # LISTEN
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture(scope="module")
def single(labs, lab_dir, tokens_file, fake_api):
    return labs.start(single_env(lab_dir, tokens_file, fake_api), name="single-iso")


def worker_port(lab: LabCtrl, user: str) -> int:
    w = lab.worker(user)
    assert w is not None, lab.workers()
    return int(w["address"].rsplit(":", 1)[1])


def test_other_local_process_cannot_use_bobs_worker(single, fake_api):
    with single.client("bob") as bob:
        run_turn(bob, fake_api)  # bob's worker runs and works through labctrl
        port = worker_port(single, "bob")
        # Knowing the address is not enough: no token, a wrong token, a guessed token.
        assert raw_upgrade("127.0.0.1", port) == 401
        assert raw_upgrade("127.0.0.1", port, {"Authorization": "Bearer " + "0" * 64}) == 401
        assert raw_upgrade("127.0.0.1", port, {"Authorization": f"Bearer {TOKENS['bob']}"}) == 401
        # The worker's HTTP endpoint is behind the token too.
        assert http_status("127.0.0.1", port, "/healthz") == 401
        # A browser page (foreign Origin) is refused before the token is even looked at.
        assert raw_upgrade("127.0.0.1", port, {"Origin": "http://evil.example"}) == 403
        # Without guessing: try every listening loopback port; no worker upgrades a credential-less client.
        upgraded = []
        for p in sorted(listening_loopback_ports()):
            try:
                if raw_upgrade("127.0.0.1", p, timeout=2) == 101:
                    upgraded.append(p)
            except (OSError, AssertionError):
                continue
        assert upgraded == [], upgraded
    # Bob's own sessions are unaffected.
    with single.client("bob") as again:
        run_turn(again, fake_api)


def test_worker_token_is_not_in_its_environment(single, fake_api):
    with single.client("alice") as alice:
        run_turn(alice, fake_api)
        pid = int(single.worker("alice")["id"].split(":", 1)[1])
        # Even root (who may read a non-dumpable process's environ) finds the token scrubbed.
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        m = re.search(rb"RELAY_WORKER_TOKEN=([^\0]*)", environ)
        assert m is None or set(m.group(1)) <= {ord("x")}, m
        # The agent (claude) it runs inherits no token either.
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            env = Path(f"/proc/{child}/environ").read_bytes()
            assert b"RELAY_WORKER_TOKEN" not in env


def test_several_identities_need_the_shared_account_statement(lab_dir, tokens_file, fake_api):
    env = single_env(lab_dir, tokens_file, fake_api)
    del env["LAB_SINGLE_SHARED_ACCOUNT"]
    env.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "LAB_PORT": "0"})
    r = subprocess.run([str(labctrl_bin())], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r
    assert "LAB_SINGLE_SHARED_ACCOUNT" in r.stderr


# ---- non-dumpable: same-user processes cannot read the controller's environment ---------------


def as_nobody(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd],
                          capture_output=True, timeout=30, **kw)


def test_agent_of_the_same_user_cannot_read_labctrl_environ(tmp_path, fake_api):
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is required", pytrace=False)
    # labctrl runs as an unprivileged user (root could read anything): nobody, in a folder it owns.
    home = tmp_path / "nobody-lab"
    home.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chown(home, NOBODY, NOBODY)
    secret = "admin-secret-" + uuid.uuid4().hex
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home), "LAB_MODE": "single",
           "LAB_PORT": "0", "LAB_WORKSPACE_ROOT": str(home / "ws"), "LAB_ADMIN_TOKEN": secret,
           "LAB_WORKER_BINARY": str(Path(os.environ.get("RELAY_WORKER_BIN") or "").resolve())
           if os.environ.get("RELAY_WORKER_BIN") else str(labctrl_bin().parent / "relay-worker")}
    proc = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(labctrl_bin())],
                            env=env, cwd=str(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        # A dumpable process of the same user, as a control: its environ IS readable by that user.
        control = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                                    "sleep", "30"], env={"CONTROL_SECRET": secret})
        try:
            wait_until(lambda: Path(f"/proc/{control.pid}/environ").exists(), 5, "control process")
            # setpriv execs sleep, so the pid is the same process.
            wait_until(lambda: Path(f"/proc/{control.pid}/comm").read_text().strip() == "sleep", 5, "sleep exec")
            ok = as_nobody("cat", f"/proc/{control.pid}/environ")
            assert ok.returncode == 0 and secret.encode() in ok.stdout, ok
        finally:
            control.kill()
            control.wait()
        # labctrl (same user) is not readable: the agent cannot learn LAB_ADMIN_TOKEN.
        r = as_nobody("cat", f"/proc/{proc.pid}/environ")
        assert r.returncode != 0 and secret.encode() not in r.stdout, r
        assert b"Permission denied" in r.stderr, r
        assert as_nobody("cat", f"/proc/{proc.pid}/mem").returncode != 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- multi mode: other users' containers ---------------------------------------------------------


PROBE = r"""
exec 3<>/dev/tcp/{host}/{port} || exit 7
printf 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n' "$EXTRA" >&3
head -c 12 <&3
"""


def container_of(dockerd, user: str) -> str:
    ids = dockerd.docker("ps", "-q", "--filter", f"label=lab.user={user}").stdout.split()
    assert len(ids) == 1, ids
    return ids[0]


def probe_from(dockerd, container: str, host: str, port: int, extra: str = "") -> subprocess.CompletedProcess:
    script = PROBE.format(host=host, port=port)
    return dockerd.docker("exec", "-e", f"EXTRA={extra}", container, "timeout", "5", "bash", "-c", script,
                          check=False, timeout=60)


def test_multi_host_network_alice_container_cannot_use_bobs_worker(labs, lab_dir, tokens_file, fake_api, dockerd):
    lab = labs.start(multi_env(lab_dir, tokens_file, fake_api, dockerd), name="multi-iso")
    try:
        with lab.client("alice") as alice, lab.client("bob") as bob:
            run_turn(alice, fake_api)
            run_turn(bob, fake_api)
            bob_port = worker_port(lab, "bob")
            alice_c = container_of(dockerd, "alice")
            # Host networking: the port is reachable, the token is what refuses.
            r = probe_from(dockerd, alice_c, "127.0.0.1", bob_port)
            assert "HTTP/1.1 401" in r.stdout, r
            r = probe_from(dockerd, alice_c, "127.0.0.1", bob_port, "Authorization: Bearer " + "1" * 64 + "\r\n")
            assert "HTTP/1.1 401" in r.stdout, r
            r = probe_from(dockerd, alice_c, "127.0.0.1", bob_port, "Origin: http://evil.example\r\n")
            assert "HTTP/1.1 403" in r.stdout, r
            # Without guessing: every listening loopback port seen from alice's container.
            ports = sorted(listening_loopback_ports())
            for p in ports:
                r = probe_from(dockerd, alice_c, "127.0.0.1", p)
                assert "HTTP/1.1 101" not in r.stdout, (p, r)
            # The token is not readable inside the container: not in PID 1's environ (non-dumpable worker).
            r = dockerd.docker("exec", alice_c, "cat", "/proc/1/environ", check=False)
            assert r.returncode != 0 and "RELAY_WORKER_TOKEN" not in r.stdout, r
        with lab.client("bob") as again:
            run_turn(again, fake_api)
    finally:
        lab.stop()
        dockerd.remove_managed()


def test_multi_bridge_network_isolates_containers(labs, lab_dir, tokens_file, fake_api, dockerd):
    """On a bridge LAB_NETWORK that labctrl creates, inter-container traffic is off: alice's container
    cannot even open a TCP connection to bob's worker (by IP or by name), while labctrl (host side) can."""
    from labsupport import FakeAnthropicOn, claude_env, write_env_file
    net = f"lab-iso-{uuid.uuid4().hex[:6]}"
    env = multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_NETWORK=net, LAB_WORKSPACE_ROOT=str(lab_dir / "ws-iso"))
    lab = labs.start(env, name="multi-bridge-iso")  # creates the network (adoption pass at start)
    try:
        info = dockerd.inspect_network(net)
        assert info["Options"].get("com.docker.network.bridge.enable_icc") == "false", info
        gateway = info["IPAM"]["Config"][0]["Gateway"]
        with FakeAnthropicOn(gateway) as bridged:
            lab.stop()
            env["LAB_WORKER_ENV_FILE"] = str(write_env_file(lab_dir / "worker-iso.env", claude_env(bridged)))
            lab = labs.start(env, name="multi-bridge-iso2")
            with lab.client("alice") as alice, lab.client("bob") as bob:
                run_turn(alice, bridged)
                run_turn(bob, bridged)
                containers = {u: container_of(dockerd, u) for u in ("alice", "bob")}
                bob_ip = dockerd.inspect(containers["bob"])["NetworkSettings"]["Networks"][net]["IPAddress"]
                bob_name = dockerd.inspect(containers["bob"])["Config"]["Hostname"]
                for target in (bob_ip, bob_name):
                    r = probe_from(dockerd, containers["alice"], target, 9000)
                    assert r.returncode != 0 and "HTTP/1.1" not in r.stdout, (target, r)
                # The controller's side reaches bob's worker (and is refused without the token).
                assert raw_upgrade(bob_ip, 9000) == 401
            with lab.client("bob") as again:
                run_turn(again, bridged)
    finally:
        lab.stop()
        dockerd.remove_managed()
        dockerd.docker("network", "rm", net, check=False)


def test_worker_without_its_stdin_token_does_not_start(tmp_path):
    """labctrl hands the token over stdin: if anything else drained that pipe first, the worker has no
    token and must not start (a stolen token then opens nothing)."""
    from labsupport import harness
    r = subprocess.run([str(harness.worker_bin()), "serve", "--host", "127.0.0.1", "--port", "0", "--token-stdin"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no token on stdin" in r.stderr, r
    r = subprocess.run([str(harness.worker_bin()), "serve", "--host", "127.0.0.1", "--port", "0", "--token-stdin"],
                       input="short\n", capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "at least 16" in r.stderr, r
