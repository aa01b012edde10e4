"""Helpers for the shipping tests: the Docker CLI against the private engine, and the images built from the
repository's Dockerfile (see conftest.py)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

import harness
from labsupport import REPO

# Image tags of these tests (distinct from scripts/worker-image.sh's lab-worker:test).
WORKER_TAG = "lab-ship-worker:test"
CONTROLLER_TAG = "lab-ship-controller:test"
AGENT_TAG = "lab-ship-worker-claude:test"
BASE_TAG = os.environ.get("LAB_BASE_IMAGE", "lab-base:bookworm")


def docker_cli() -> str:
    """Debian's docker.io CLI (20.10) has BuildKit built in; a newer CLI without the buildx plugin refuses
    DOCKER_BUILDKIT=1, so prefer /usr/bin/docker (scripts/setup.sh installs it) over other copies on PATH."""
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else (shutil.which("docker") or "docker")


@dataclass
class Engine:
    """The private dockerd (its DOCKER_HOST)."""

    host: str

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_BUILDKIT="1")
        for k in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
            env.pop(k, None)
        env.update(extra)
        return env

    def docker(self, *args: str, timeout: float = 120.0, check: bool = True, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
        r = subprocess.run([docker_cli(), *args], env=self.env(), capture_output=True, text=True, timeout=timeout,
                           cwd=str(cwd) if cwd else None)
        if check and r.returncode != 0:
            pytest.fail(f"docker {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}", pytrace=False)
        return r

    def inspect(self, ref: str) -> dict[str, Any]:
        return json.loads(self.docker("inspect", ref).stdout)[0]

    def image_id(self, ref: str) -> Optional[str]:
        r = self.docker("image", "inspect", "-f", "{{.Id}}", ref, check=False, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else None

    def containers(self, label: str) -> list[dict[str, Any]]:
        out = self.docker("ps", "-a", "--filter", f"label={label}", "--format", "{{json .}}").stdout
        return [json.loads(l) for l in out.splitlines() if l.strip()]

    def remove_user_containers(self, user: str) -> None:
        ids = [c["ID"] for c in self.containers(f"lab.user={user}")]
        if ids:
            self.docker("rm", "-f", *ids, check=False)


@dataclass
class ShipImages:
    worker: str
    controller: str
    agent: str  # FROM worker + the real claude binary
    dist: Path


def build_ship_images(engine: Engine) -> ShipImages:
    # 1. dist/: the debug binaries the other tests use, and the shared libraries they need.
    env = dict(os.environ)
    bin_dir = harness.worker_bin().parent
    env["DIST_BIN_DIR"] = str(bin_dir)
    r = subprocess.run(["bash", str(REPO / "scripts/dist.sh"), "debug"], cwd=str(REPO), env=env,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail(f"scripts/dist.sh failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
    # 2. The Dockerfile's runtime stages, offline: prebuilt binaries, the imported Debian base, no network
    #    for RUN steps (apt fails fast and the dist/syslib copies fill in).
    for target, tag in (("worker", WORKER_TAG), ("controller", CONTROLLER_TAG)):
        engine.docker("build", "--network", "none", "--target", target,
                      "--build-arg", "BINARIES=prebuilt", "--build-arg", f"RUNTIME_BASE={BASE_TAG}",
                      "-t", tag, ".", cwd=REPO, timeout=600)
    # 3. The agent CLI layered on top, as an operator would (rebuilt only when an input changes).
    claude = harness.real_claude_bin().resolve()
    if not claude.exists():
        pytest.fail(f"real claude binary not found at {claude} (scripts/setup.sh)", pytrace=False)
    st = claude.stat()
    inputs = hashlib.sha256(f"{engine.image_id(WORKER_TAG)} {claude} {st.st_size} {st.st_mtime_ns}".encode()).hexdigest()[:16]
    have = engine.docker("image", "inspect", "-f", '{{index .Config.Labels "lab.inputs-hash"}}', AGENT_TAG,
                         check=False, timeout=30).stdout.strip()
    if have != inputs:
        cache = harness.LAB_CACHE
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=str(cache), prefix="ship-ctx.") as ctx:
            try:
                os.link(claude, Path(ctx) / "claude")  # same filesystem: no 400 MB copy
            except OSError:
                shutil.copy2(claude, Path(ctx) / "claude")
            (Path(ctx) / "Dockerfile").write_text(
                f"FROM {WORKER_TAG}\n"
                "COPY claude /usr/local/bin/claude\n"
                f"LABEL lab.inputs-hash={inputs}\n")
            engine.docker("build", "--network", "none", "-t", AGENT_TAG, ctx, timeout=600)
    return ShipImages(worker=WORKER_TAG, controller=CONTROLLER_TAG, agent=AGENT_TAG, dist=REPO / "dist")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
