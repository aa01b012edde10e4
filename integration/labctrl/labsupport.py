"""Helpers for the labctrl end-to-end tests: the controller process, tokens, Docker access (see conftest.py)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

import harness
from fakes.fake_anthropic import FakeAnthropic

REPO = harness.REPO_ROOT
JWT_SECRET = "test-secret-0123456789abcdef-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
TOKENS = {"alice": "alice-token-0123456789abcdef", "bob": "bob-token-0123456789abcdef0"}


def labctrl_bin() -> Path:
    p = Path(os.environ.get("LABCTRL_BIN") or ".build/debug/labctrl")
    return p if p.is_absolute() else REPO / p


# ---- tokens ------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_hs256(claims: dict[str, Any], secret: str = JWT_SECRET, header: Optional[dict[str, Any]] = None) -> str:
    h = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64url(json.dumps(h).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def jwt_openssl(claims: dict[str, Any], key_pem: Path, alg: str) -> str:
    """RS256 / ES256 with the openssl CLI (no Python crypto library is installed here)."""
    h = {"alg": alg, "typ": "JWT"}
    signing_input = f"{b64url(json.dumps(h).encode())}.{b64url(json.dumps(claims).encode())}"
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key_pem)], input=signing_input.encode(),
                         capture_output=True, check=True, timeout=30).stdout
    if alg == "ES256":
        der = _ecdsa_der_to_raw(der)
    return f"{signing_input}.{b64url(der)}"


def _ecdsa_der_to_raw(der: bytes) -> bytes:
    """ASN.1 SEQUENCE { INTEGER r, INTEGER s } → r || s, 32 bytes each (JWS ES256)."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        out += v.rjust(32, b"\x00")
        i += 2 + n
    return out


def claims(sub: str, ttl: float = 300, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"sub": sub, "exp": int(time.time() + ttl)}
    c.update(extra)
    return c


# ---- the controller process -------------------------------------------------------------------


@dataclass
class LabCtrl:
    """One running `labctrl`; stopped (by PID) at teardown, with any worker it left behind."""

    env: dict[str, str]
    workdir: Path
    proc: Optional[subprocess.Popen] = None
    port: int = 0
    stdout_lines: list[str] = field(default_factory=list)
    log_path: Optional[Path] = None

    def start(self, timeout: float = 30.0) -> "LabCtrl":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"labctrl-{len(list(self.workdir.glob('labctrl-*.log')))}.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(labctrl_bin())], env=self.env, cwd=str(self.workdir), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        log.close()
        got: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                got.append(line.rstrip("\n"))
                if "listening on" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or not any("listening on" in l for l in got):
            self.stop()
            raise RuntimeError(f"labctrl did not start:\n{self.log_tail()}")
        self.stdout_lines = got
        self.port = int([l for l in got if "listening on" in l][0].rsplit(":", 1)[1])
        return self

    # -- endpoints --
    def ws_url(self, token: Optional[str] = None) -> str:
        base = f"ws://127.0.0.1:{self.port}/ws"
        return base if token is None else f"{base}?token={token}"

    def http(self, method: str, path: str, token: Optional[str] = None, timeout: float = 60.0) -> tuple[int, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as r:
                body = r.read().decode()
                status = r.status
        except urllib.error.HTTPError as e:
            body = e.read().decode()
            status = e.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def workers(self) -> list[dict[str, Any]]:
        status, body = self.http("GET", "/v1/workers", ADMIN_TOKEN)
        assert status == 200, body
        return body["workers"]

    def worker(self, user: str) -> Optional[dict[str, Any]]:
        return next((w for w in self.workers() if w["user"] == user), None)

    def metrics(self) -> str:
        status, body = self.http("GET", "/metrics")
        assert status == 200
        return body

    def client(self, user: str, **kw: Any) -> harness.WSClient:
        return harness.WSClient(self.ws_url(TOKENS[user]), **kw)

    # -- lifecycle --
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> Optional[int]:
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        rc = p.returncode
        self.proc = None
        return rc

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def kill_leftover_workers(marker: str) -> list[int]:
    """SIGKILL relay-worker processes whose command line mentions `marker` (this test's workspace root)."""
    killed = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmd = (pid_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"relay-worker") and any(marker.encode() in c for c in cmd):
            try:
                os.kill(int(pid_dir.name), signal.SIGKILL)
                killed.append(int(pid_dir.name))
            except ProcessLookupError:
                pass
    return killed


# ---- shared pieces ----------------------------------------------------------------------------


class FakeAnthropicOn(FakeAnthropic):
    """The fake model API bound to another local address (e.g. a Docker bridge gateway), for workers that
    cannot reach this namespace's loopback."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    def start(self) -> "FakeAnthropicOn":
        import threading
        from http.server import ThreadingHTTPServer
        from fakes import fake_anthropic as fa

        fake = self

        class Handler(fa._Handler):
            owner = fake

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def claude_env(fake_api: FakeAnthropic) -> dict[str, str]:
    return dict(harness.CLAUDE_QUIET_ENV, ANTHROPIC_BASE_URL=fake_api.url)


def write_env_file(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


class LabFactory:
    """Starts controllers for a module; all stopped at teardown, with leftover workers and containers."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[LabCtrl] = []
        self.n = 0

    def start(self, env: dict[str, str], name: Optional[str] = None) -> LabCtrl:
        self.n += 1
        full = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.base / "home"),
                "LAB_PORT": "0", "LAB_LOG_LEVEL": "debug", "LAB_ADMIN_TOKEN": ADMIN_TOKEN}
        (self.base / "home").mkdir(exist_ok=True)
        full.update(env)
        lab = LabCtrl(env=full, workdir=self.base / (name or f"ctl-{self.n}"))
        try:
            lab.start()
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        self.started.append(lab)
        return lab

    def stop_all(self) -> None:
        for lab in self.started:
            lab.stop()
            root = lab.env.get("LAB_WORKSPACE_ROOT")
            if root:
                kill_leftover_workers(root)
        self.started.clear()


def single_env(lab_dir: Path, tokens_file: Path, fake_api: FakeAnthropic, **extra: str) -> dict[str, str]:
    """Single mode: relay-worker subprocesses with the real claude on their PATH."""
    bin_dir = harness.make_bin_dir(lab_dir / "bin", claude="real")
    worker_env = dict(claude_env(fake_api), PATH=f"{bin_dir}:/usr/local/bin:/usr/bin:/bin")
    env_file = write_env_file(lab_dir / "worker.env", worker_env)
    env = {
        "LAB_MODE": "single",
        "LAB_WORKSPACE_ROOT": str(lab_dir / "ws"),
        "LAB_TOKENS_FILE": str(tokens_file),
        "LAB_JWT_SECRET": JWT_SECRET,
        "LAB_WORKER_ENV_FILE": str(env_file),
        "LAB_WORKER_BINARY": str(harness.worker_bin()),
        # alice and bob share this OS account in single mode; the controller refuses to start without it.
        "LAB_SINGLE_SHARED_ACCOUNT": "true",
    }
    env.update(extra)
    return env


# ---- Docker (multi mode) ---------------------------------------------------------------------


@dataclass
class Dockerd:
    state: Path
    host: str

    def docker(self, *args: str, timeout: float = 120.0, check: bool = True, input_text: Optional[str] = None) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=dict(os.environ, DOCKER_HOST=self.host), capture_output=True,
                              text=True, timeout=timeout, check=check, input=input_text)

    def containers(self, label: str = "lab.managed-by=labctrl") -> list[dict[str, Any]]:
        out = self.docker("ps", "-a", "--filter", f"label={label}", "--format", "{{json .}}").stdout
        return [json.loads(l) for l in out.splitlines() if l.strip()]

    def inspect(self, ref: str) -> dict[str, Any]:
        return json.loads(self.docker("inspect", ref).stdout)[0]

    def inspect_network(self, ref: str) -> dict[str, Any]:
        return json.loads(self.docker("network", "inspect", ref).stdout)[0]

    def stop_daemon(self, timeout: float = 60.0) -> None:
        """SIGTERM to the daemon (by its PID), waiting for it to exit; mounts and data root stay for a restart."""
        pid = int((self.state / "docker.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), f"dockerd {pid} did not stop within {timeout}s"

    def start_daemon(self, *flags: str) -> None:
        """Starts the daemon again on the same socket and data root, with extra `flags` (e.g. --live-restore)."""
        env = dict(os.environ, LAB_DOCKERD_IPTABLES="true", LAB_DOCKERD_ARGS=" ".join(flags),
                   LAB_DOCKERD_DATA=(self.state / "data-root").read_text().strip())
        r = subprocess.run([str(REPO / "scripts/dockerd.sh"), "start", str(self.state)], capture_output=True, text=True,
                           timeout=120, env=env)
        assert r.returncode == 0, r.stderr

    def remove_managed(self) -> None:
        ids = [c["ID"] for c in self.containers()]
        if ids:
            self.docker("rm", "-f", *ids, check=False)


WORKER_IMAGE = os.environ.get("LAB_WORKER_IMAGE", "lab-worker:test")


def multi_env(lab_dir: Path, tokens_file: Path, fake_api: FakeAnthropic, dockerd: Dockerd, **extra: str) -> dict[str, str]:
    """Multi mode on the private engine, host networking (the fake API is on this namespace's loopback)."""
    env_file = write_env_file(lab_dir / "worker-multi.env", claude_env(fake_api))
    env = {
        "LAB_MODE": "multi",
        "LAB_DOCKER_HOST": dockerd.host,
        "LAB_IMAGE": WORKER_IMAGE,
        "LAB_NETWORK": "host",
        "LAB_WORKSPACE_ROOT": str(lab_dir / "ws-multi"),
        "LAB_TOKENS_FILE": str(tokens_file),
        "LAB_JWT_SECRET": JWT_SECRET,
        "LAB_WORKER_ENV_FILE": str(env_file),
        "LAB_CONTAINER_MEMORY": "1g",
        "LAB_WORKER_STOP_GRACE_SECS": "2",
        # Containers named lab-<user>, as the tests expect (the default derives it from the host name).
        "LAB_DEPLOYMENT": "lab",
    }
    env.update(extra)
    return env


# ---- helpers for tests ------------------------------------------------------------------------


def statuses(client: harness.WSClient) -> list[str]:
    return [e.get("status") for e in client.events if e.get("type") == "status" and str(e.get("status", "")).startswith("lab.")]


def wait_until(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    if not harness.wait_until(cond, timeout, interval):
        pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
