"""Fixtures for the labctrl end-to-end tests; helpers live in labsupport.py.

What runs for real: the `labctrl` binary, `relay-worker` (as subprocesses in single mode, inside containers
of a private dockerd in multi mode), the real `claude` binary, and WebSocket clients. Only the model API is
fake (../fakes/fake_anthropic.py, on loopback).

Environment:
  LABCTRL_BIN        labctrl binary (default .build/debug/labctrl)
  RELAY_WORKER_BIN   relay-worker binary for single mode (default .build/debug/relay-worker)
  LAB_TEST_DOCKER=0  skip the multi-mode (Docker) tests

Run everything inside a loopback-only namespace (the parent conftest refuses otherwise):
  unshare -n sh -c 'ip link set lo up; "$LAB_VENV/bin/pytest" integration/labctrl'
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from fakes.fake_anthropic import FakeAnthropic
from labsupport import REPO, TOKENS, Dockerd, LabFactory


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="module")
def tokens_file(lab_dir: Path) -> Path:
    p = lab_dir / "tokens"
    p.write_text("".join(f"{u} {t}\n" for u, t in TOKENS.items()))
    return p


@pytest.fixture(scope="module")
def labs(lab_dir: Path) -> Iterator[LabFactory]:
    """Starts controllers; all are stopped (by PID) at the end of the module, with leftover workers."""
    f = LabFactory(lab_dir)
    yield f
    f.stop_all()


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """A private dockerd (scripts/dockerd.sh) with the worker image built (scripts/worker-image.sh)."""
    if os.environ.get("LAB_TEST_DOCKER") == "0":
        pytest.skip("LAB_TEST_DOCKER=0")
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.fail("dockerd/docker not installed (scripts/setup.sh)", pytrace=False)
    state = tmp_path_factory.mktemp("dockerd")
    # iptables on: bridge networks with enable_icc=false really isolate containers. Safe only because
    # the tests run in their own network namespace (the parent conftest refuses otherwise).
    r = subprocess.run([str(REPO / "scripts/dockerd.sh"), "start", str(state)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, LAB_DOCKERD_IPTABLES="true"))
    if r.returncode != 0:
        pytest.fail(f"dockerd did not start:\n{r.stderr}", pytrace=False)
    host = [l.split("=", 1)[1] for l in r.stdout.splitlines() if l.startswith("export DOCKER_HOST=")][0]
    d = Dockerd(state=state, host=host)
    try:
        env = dict(os.environ, DOCKER_HOST=host)
        b = subprocess.run([str(REPO / "scripts/base-image.sh"), "import"], env=env, capture_output=True, text=True, timeout=600)
        if b.returncode != 0:
            pytest.fail(f"base image import failed:\n{b.stderr}", pytrace=False)
        w = subprocess.run([str(REPO / "scripts/worker-image.sh")], env=env, capture_output=True, text=True, timeout=900)
        if w.returncode != 0:
            pytest.fail(f"worker image build failed:\n{w.stdout}\n{w.stderr}", pytrace=False)
        d.remove_managed()
        yield d
    finally:
        d.remove_managed()
        subprocess.run([str(REPO / "scripts/dockerd.sh"), "stop", str(state)], capture_output=True, timeout=120)
