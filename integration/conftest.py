"""Fixtures for the relay integration tests (see harness.py for the machinery).

Environment:
  IMPL=worker (default) | reference   which implementation the single-implementation tests drive
  RELAY_WORKER_BIN                     relay-worker binary (default .build/debug/relay-worker, repo-relative)
  LAB_CACHE / LAB_VENV / AI_RELAY_BIN / CLAUDE_BIN   from $LAB_CACHE/env.sh (scripts/setup.sh)
  LAB_ALLOW_NETWORK=1                  allow running with a non-loopback interface up (not recommended)

Every test must run in a network namespace that has only loopback:
  unshare -n sh -c 'ip link set lo up; pytest integration'
"""
from __future__ import annotations

import fcntl
import os
import socket
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import harness
from harness import IMPL, RelayProcess

# Our own temp root: other agents' pytest runs share /tmp/pytest-of-<user> and rotate (delete) old
# run directories there, which must never race with ours. Read lazily by pytest's tmp_path factory.
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", os.path.join(tempfile.gettempdir(), "relay-integration"))
os.makedirs(os.environ["PYTEST_DEBUG_TEMPROOT"], exist_ok=True)

SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1


def _interfaces_up() -> dict[str, bool]:
    """name → is-UP for every interface of *this* network namespace (sysfs may show another netns)."""
    result: dict[str, bool] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _index, name in socket.if_nameindex():
            try:
                req = struct.pack("16sH14s", name.encode()[:15], 0, b"\0" * 14)
                res = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req)
                flags = struct.unpack("16sH14s", res)[1]
            except OSError:
                flags = 0
            result[name] = bool(flags & IFF_UP)
    return result


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("LAB_ALLOW_NETWORK") == "1":
        return
    ifaces = _interfaces_up()
    up = [n for n, is_up in ifaces.items() if is_up and n != "lo"]
    if up:
        pytest.exit(
            "REFUSING TO RUN: non-loopback network interface(s) up: "
            + ", ".join(up)
            + ".\nThese tests start real agent CLIs; run them in a loopback-only namespace:\n"
            "  unshare -n sh -c 'ip link set lo up; pytest integration'\n"
            "(or set LAB_ALLOW_NETWORK=1 if you really mean it).",
            returncode=3,
        )
    if not ifaces.get("lo"):
        pytest.exit("loopback is down: run `ip link set lo up` inside the namespace first", returncode=3)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"relay implementation under test: IMPL={IMPL}",
        f"relay-worker: {harness.worker_bin()}",
        f"ai-relay: {harness.ai_relay_bin()}",
        f"claude: {harness.real_claude_bin()}",
    ]


# ---- relay servers -------------------------------------------------------------------------

_RUNNING: list[RelayProcess] = []


class RelayFactory:
    """Starts relays for a module (or a test); all are stopped by PID at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[RelayProcess] = []
        self._n = 0

    def start(self, impl: str = IMPL, *, claude: str = "fake", env: dict[str, str] | None = None,
              workspace_root: Path | None = None, worker_args: list[str] | None = None,
              path_dirs: list[Path] | None = None) -> RelayProcess:
        why = harness.missing_prerequisite(impl)
        if why:
            pytest.fail(f"cannot start the {impl} relay: {why}", pytrace=False)
        self._n += 1
        workdir = self.base / f"{impl}-{self._n}"
        bin_dir = harness.make_bin_dir(workdir / "bin", claude=claude)
        relay = RelayProcess(
            impl=impl, workdir=workdir, path_dirs=[bin_dir] + list(path_dirs or []),
            env_extra=dict(env or {}), workspace_root=workspace_root, worker_args=list(worker_args or []),
        )
        try:
            relay.start()
        except (RuntimeError, FileNotFoundError) as exc:
            pytest.fail(str(exc), pytrace=False)
        self.started.append(relay)
        _RUNNING.append(relay)
        return relay

    def stop_all(self) -> None:
        for r in self.started:
            r.stop()
            if r in _RUNNING:
                _RUNNING.remove(r)
        self.started.clear()


@pytest.fixture(scope="module")
def relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayFactory]:
    f = RelayFactory(tmp_path_factory.mktemp("relays"))
    yield f
    f.stop_all()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh project folder for one session (realpath: the relay reports absolute folders)."""
    d = tmp_path / "project"
    d.mkdir()
    return Path(os.path.realpath(d))


@pytest.fixture
def clients() -> Iterator[Callable[..., harness.WSClient]]:
    """`clients(relay)` opens a WSClient that is closed at teardown."""
    opened: list[harness.WSClient] = []

    def open_client(relay: RelayProcess, **kw: Any) -> harness.WSClient:
        c = relay.connect(**kw)
        opened.append(c)
        return c

    yield open_client
    for c in opened:
        c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for r in list(_RUNNING):
            rep.sections.append((f"relay log {r.impl}:{r.port}", r.log_tail(60)))
