"""Fixtures for the shipping tests: the Dockerfile's images on a private dockerd, compose.yaml,
and the web console in headless Chromium. Helpers for the controller come from ../labctrl/labsupport.py.

What runs for real: `docker build` (BuildKit) of the Dockerfile's `worker` and `controller` stages from
scripts/dist.sh binaries on the locally imported Debian base, `labctrl`, `relay-worker` (in containers
made from those images, and as subprocesses), the real `claude` binary, Compose 1.29, Chromium. Only the
model API is fake (../fakes/fake_anthropic.py, on loopback).

Environment:
  LAB_TEST_DOCKER_HOST   engine to use (scripts/test-in-netns.sh exports its private dockerd); without it a
                         private dockerd is started here with scripts/dockerd.sh
  LABCTRL_BIN, RELAY_WORKER_BIN   binaries (default .build/debug/…)
  LAB_TEST_DOCKER=0      skip the Docker tests
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labctrl"))

from fakes.fake_anthropic import FakeAnthropic  # noqa: E402
from labsupport import REPO, LabFactory  # noqa: E402

from shipsupport import Engine, ShipImages, build_ship_images  # noqa: E402


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ship")


@pytest.fixture(scope="module")
def labs(lab_dir: Path) -> Iterator[LabFactory]:
    f = LabFactory(lab_dir)
    yield f
    f.stop_all()


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The private dockerd of the test run (LAB_TEST_DOCKER_HOST), or one started here."""
    if os.environ.get("LAB_TEST_DOCKER") == "0":
        pytest.skip("LAB_TEST_DOCKER=0")
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd not installed (scripts/setup.sh)", pytrace=False)
    state = None
    host = os.environ.get("LAB_TEST_DOCKER_HOST")
    if not host:
        state = tmp_path_factory.mktemp("shipd")
        r = subprocess.run([str(REPO / "scripts/dockerd.sh"), "start", str(state)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.fail(f"dockerd did not start:\n{r.stderr}", pytrace=False)
        host = [l.split("=", 1)[1] for l in r.stdout.splitlines() if l.startswith("export DOCKER_HOST=")][0]
    eng = Engine(host)
    try:
        b = subprocess.run([str(REPO / "scripts/base-image.sh"), "import"], env=eng.env(), capture_output=True, text=True, timeout=600)
        if b.returncode != 0:
            pytest.fail(f"base image import failed:\n{b.stderr}", pytrace=False)
        yield eng
    finally:
        if state is not None:
            subprocess.run([str(REPO / "scripts/dockerd.sh"), "stop", str(state)], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def ship_images(engine: Engine) -> ShipImages:
    """dist/ from scripts/dist.sh, then the Dockerfile's worker and controller stages, then a test image
    FROM that worker image with the real claude binary added (the worker stage leaves room for agent CLIs)."""
    return build_ship_images(engine)


@pytest.fixture
def user_id() -> str:
    """A user nobody else's tests use, so no leftover container of another test is ever adopted."""
    return f"ship-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keeps the call's report on the item, so fixtures can tell a failed test (failure screenshots)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
