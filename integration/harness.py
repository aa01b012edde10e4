"""Integration-test harness: start the relay under test, talk to it over a real WebSocket.

Why: the same tests run against `relay-worker` (our Swift port) and the Python reference
`ai-relay` 0.4.46, so everything implementation-specific (command line, readiness, teardown)
lives here, and the tests only speak the wire protocol.

No fixed sleeps: every wait is "until this event/condition, or fail after a bounded timeout".
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKES_DIR = Path(__file__).resolve().parent / "fakes"
LAB_CACHE = Path(os.environ.get("LAB_CACHE", "/root/.cache/lab"))

IMPL = os.environ.get("IMPL", "worker").strip().lower()
if IMPL in ("relay-worker", "swift"):
    IMPL = "worker"
if IMPL in ("ai-relay", "python", "ref"):
    IMPL = "reference"

# The claude env of real-agent-clis.md (ANTHROPIC_BASE_URL is added per fake API).
CLAUDE_QUIET_ENV = {
    "ANTHROPIC_API_KEY": "dummy",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_MAX_RETRIES": "0",
}


# ---- locating the implementations ------------------------------------------------------------


def worker_bin() -> Path:
    p = os.environ.get("RELAY_WORKER_BIN") or ".build/debug/relay-worker"
    path = Path(p)
    return path if path.is_absolute() else (REPO_ROOT / path)


def venv_dir() -> Path:
    return Path(os.environ.get("LAB_VENV") or (LAB_CACHE / "venv"))


def ai_relay_bin() -> Path:
    return Path(os.environ.get("AI_RELAY_BIN") or (venv_dir() / "bin" / "ai-relay"))


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def real_claude_bin() -> Path:
    if os.environ.get("CLAUDE_BIN"):
        return Path(os.environ["CLAUDE_BIN"])
    return LAB_CACHE / "clis" / "claude-agent-sdk-0.2.186" / "bin" / "claude"


def missing_prerequisite(impl: str) -> Optional[str]:
    """A human-readable reason why `impl` cannot run here, or None."""
    if impl == "worker":
        b = worker_bin()
        if not (b.is_file() and os.access(b, os.X_OK)):
            return f"relay-worker binary not found at {b} (swift build --product relay-worker, or set RELAY_WORKER_BIN)"
    else:
        if not ai_relay_bin().exists():
            return f"ai-relay not found at {ai_relay_bin()} (run scripts/setup.sh and source $LAB_CACHE/env.sh)"
    return None


# ---- executables put on the relay's PATH ---------------------------------------------------


def install_script(src: Path, dest_dir: Path, name: str) -> Path:
    """Copy a fake (a Python script) to dest_dir/name with this interpreter in its shebang."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    body = src.read_text().split("\n", 1)[1] if src.read_text().startswith("#!") else src.read_text()
    dest = dest_dir / name
    dest.write_text(f"#!{sys.executable}\n{body}")
    dest.chmod(0o755)
    return dest


def make_bin_dir(dest: Path, *, claude: str) -> Path:
    """A PATH dir with `claude` (claude="fake" → fake_claude.py, "real" → the real binary) and `generic`."""
    dest.mkdir(parents=True, exist_ok=True)
    if claude == "fake":
        install_script(FAKES_DIR / "fake_claude.py", dest, "claude")
    elif claude == "real":
        target = real_claude_bin()
        if not target.exists():
            raise FileNotFoundError(f"real claude binary not found at {target}: run scripts/setup.sh")
        link = dest / "claude"
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(target)
    install_script(FAKES_DIR / "fake_generic.py", dest, "generic")
    return dest


# ---- the relay process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_REFERENCE_WITH_ROOT = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.INFO, format='%(asctime)s [%(levelname)s] %(name)s: %(message)s')\n"
    "from ai_relay.relay import RelayServer\n"
    "RelayServer(host=sys.argv[1], port=int(sys.argv[2]), workspace_root=sys.argv[3]).run()\n"
)


@dataclass
class RelayProcess:
    """One running relay server (`relay-worker serve` or `ai-relay serve`) on a loopback port."""

    impl: str
    workdir: Path
    path_dirs: list[Path]
    env_extra: dict[str, str] = field(default_factory=dict)
    workspace_root: Optional[Path] = None
    worker_args: list[str] = field(default_factory=list)  # flags only relay-worker understands
    ready_timeout: float = 30.0
    proc: Optional[subprocess.Popen] = None
    port: int = 0
    home: Optional[Path] = None
    log_path: Optional[Path] = None

    def command(self, port: int) -> list[str]:
        if self.impl == "worker":
            cmd = [str(worker_bin()), "serve", "--host", "127.0.0.1", "--port", str(port)]
            if self.workspace_root is not None:
                cmd += ["--workspace-root", str(self.workspace_root)]
            return cmd + list(self.worker_args)
        if self.workspace_root is not None:
            # `ai-relay serve` has no --workspace-root; the library constructor has.
            return [str(venv_python()), "-c", _REFERENCE_WITH_ROOT, "127.0.0.1", str(port), str(self.workspace_root)]
        return [str(ai_relay_bin()), "serve", "--host", "127.0.0.1", "--port", str(port)]

    def environment(self) -> dict[str, str]:
        assert self.home is not None
        env = {
            "PATH": ":".join([str(d) for d in self.path_dirs] + ["/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.workdir / "tmp"),
        }
        env.update(self.env_extra)
        return env

    def start(self) -> "RelayProcess":
        why = missing_prerequisite(self.impl)
        if why:
            raise RuntimeError(why)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        self.home = self.workdir / "home"
        self.home.mkdir(exist_ok=True)
        last_error = ""
        for attempt in range(3):  # a free port can be taken between probe and bind: retry
            self.port = free_port()
            self.log_path = self.workdir / f"relay-{self.impl}-{self.port}.log"
            log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                self.command(self.port), env=self.environment(), cwd=str(self.workdir),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            log.close()
            if self._wait_ready():
                return self
            last_error = self.log_tail()
            self.stop()
        raise RuntimeError(f"{self.impl} relay did not become ready:\n{last_error}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)  # polling interval of a bounded readiness wait, not a "sleep and hope"
        return False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the server (by PID), 5 s grace, then SIGKILL its process group."""
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # its own session: pgid == pid
            except ProcessLookupError:
                pass
            p.wait(timeout=5)
        self.proc = None

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        data = self.log_path.read_bytes().decode("utf-8", "replace").splitlines()
        return "\n".join(data[-lines:])

    def connect(self, **kw: Any) -> "WSClient":
        return WSClient(self.url, relay=self, **kw)


# ---- the WebSocket client ------------------------------------------------------------------


class WSClient:
    """A synchronous WebSocket client that records every event it receives.

    `wait_for(pred)` reads frames until one satisfies `pred` (bounded); `wait_closed()` reads until
    the server closes, so a test can assert *exactly* which events arrived before the close.
    """

    def __init__(self, url: str, relay: Optional[RelayProcess] = None, compression: Optional[str] = None,
                 open_timeout: float = 10.0, headers: Optional[dict[str, str]] = None) -> None:
        self.relay = relay
        self.ws = ws_connect(url, open_timeout=open_timeout, close_timeout=5, max_size=None,
                             compression=compression, proxy=None, ping_interval=None,
                             legacy=True, additional_headers=headers)
        self.events: list[dict[str, Any]] = []
        self.closed = False
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.label = ""  # the current "step", recorded on every event (differential test)

    # -- sending --
    def send_json(self, obj: Any) -> None:
        self.ws.send(json.dumps(obj))

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def send_bytes(self, data: bytes) -> None:
        self.ws.send(data)

    # -- receiving --
    def recv_event(self, timeout: float) -> Optional[dict[str, Any]]:
        """The next event; None once the connection is closed. Raises TimeoutError."""
        if self.closed:
            return None
        try:
            frame = self.ws.recv(timeout=timeout)
        except ConnectionClosed:
            self._mark_closed()
            return None
        if isinstance(frame, bytes):
            ev: dict[str, Any] = {"type": "<binary>", "data": frame}
        else:
            try:
                ev = json.loads(frame)
            except ValueError:
                ev = {"type": "<non-json>", "frame": frame}
            if not isinstance(ev, dict):
                ev = {"type": "<non-object>", "frame": frame}
        ev["_step"] = self.label
        self.events.append(ev)
        return ev

    def _mark_closed(self) -> None:
        self.closed = True
        self.close_code = self.ws.close_code
        self.close_reason = self.ws.close_reason

    def forget_received(self) -> None:
        """Later waits match only events that arrive from now on (this socket is shared by several tests)."""
        for ev in self.events:
            ev["_consumed"] = True

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0, what: str = "") -> dict[str, Any]:
        # Events already received (e.g. while waiting for something else) count too.
        for ev in self.events:
            if not ev.get("_consumed") and pred(ev):
                ev["_consumed"] = True
                return ev
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f"timed out after {timeout}s waiting for {what or pred}")
            try:
                ev = self.recv_event(left)
            except TimeoutError:
                continue
            if ev is None:
                self.fail(f"connection closed ({self.close_code} {self.close_reason!r}) while waiting for {what or pred}")
            if pred(ev):
                ev["_consumed"] = True
                return ev

    def wait_type(self, *types: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for(lambda e: e.get("type") in types, timeout, what=f"type in {types}")

    def wait_closed(self, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Read until the server closes; returns every event received on this connection."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f"server did not close the connection within {timeout}s")
            try:
                self.recv_event(left)
            except TimeoutError:
                continue
        return self.events

    def handshake(self, cfg: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Send the handshake and return `session_start` (fails on anything else first)."""
        self.send_json(cfg)
        ev = self.wait_for(lambda e: True, timeout, what="the first event after the handshake")
        if ev.get("type") != "session_start":
            self.fail(f"expected session_start, got {ev}")
        return ev

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") in types]

    def close(self) -> None:
        if os.environ.get("RELAY_TEST_DUMP") == "1":  # debugging aid: print the whole conversation
            print(f"\n--- {len(self.events)} events on {self.relay.impl if self.relay else '?'} ---")
            for e in self.events:
                print("  " + brief(e, 400))
        try:
            self.ws.close()
        except Exception:
            pass
        if not self.closed:
            self._mark_closed()

    def fail(self, msg: str) -> None:
        import pytest

        summary = "\n".join(brief(e) for e in self.events[-40:])
        extra = f"\n--- relay log ---\n{self.relay.log_tail()}" if self.relay else ""
        pytest.fail(f"{msg}\n--- events ({len(self.events)}) ---\n{summary}{extra}", pytrace=False)

    def __enter__(self) -> "WSClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def brief(ev: dict[str, Any], limit: int = 300) -> str:
    d = {k: v for k, v in ev.items() if k not in ("raw", "ts", "_consumed")}
    s = json.dumps(d, default=repr)
    return s if len(s) <= limit else s[:limit] + "…"


def texts(events: Iterable[dict[str, Any]], *types: str) -> str:
    """Concatenated `text` of the events of the given types (PTY output arrives in arbitrary chunks)."""
    return "".join(e.get("text") or "" for e in events if not types or e.get("type") in types)


def pid_state(pid: int) -> Optional[str]:
    """'R', 'S', 'Z', ... or None when the process no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def processes_in(folder: Path) -> list[tuple[int, Optional[str]]]:
    """(pid, state) of every process whose working directory is `folder` or below (agent children)."""
    root = os.path.realpath(folder)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:  # gone, or a zombie (no cwd any more)
            continue
        if cwd == root or cwd.startswith(root + "/"):
            found.append((int(entry), pid_state(int(entry))))
    return found


def wait_until(cond: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def kill_if_alive(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def which(name: str, path_dirs: list[Path]) -> Optional[str]:
    return shutil.which(name, path=":".join(str(d) for d in path_dirs))


def xfail_on_reference(reason: str):
    """Known behaviour of ai-relay 0.4.46 that relay-worker deliberately does differently (README:
    "Deliberate differences from ai-relay 0.4.46"): expected to fail only when IMPL=reference. Strict:
    if the reference passes (XPASS), the marker is wrong and the test fails."""
    import pytest

    return pytest.mark.xfail(IMPL == "reference", reason=f"reference ai-relay 0.4.46: {reason}", strict=True)
