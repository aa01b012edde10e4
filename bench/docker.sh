#!/usr/bin/env bash
# DockerClient vs docker-py 7.1, in one run against one private engine.
#
#   bench/docker.sh [DockerBench options...]      e.g. bench/docker.sh --inspect 5000 --strict
#
# Steps: make sure docker-py 7.1.0 is importable (else a venv under $LAB_CACHE, needs PyPI, so outside the
# netns), build the lab-base image tarball (outside), build DockerBench in release mode, then inside
# `unshare -n`: start a private dockerd, import the image, run the bench, stop the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LAB_CACHE:-/root/.cache/lab}"

python=python3
if ! python3 -c 'import docker, sys; sys.exit(docker.__version__ != "7.1.0")' 2>/dev/null; then
    venv="$CACHE/venv-dockerpy"
    if ! "$venv/bin/python" -c 'import docker, sys; sys.exit(docker.__version__ != "7.1.0")' 2>/dev/null; then
        echo "bench/docker.sh: installing docker==7.1.0 into $venv" >&2
        python3 -m venv "$venv"
        timeout 300 "$venv/bin/pip" install -q "docker==7.1.0"
    fi
    python="$venv/bin/python"
fi

scripts/base-image.sh fetch
timeout 1200 swift build -c release --product DockerBench >&2
bench="$(swift build -c release --show-bin-path)/DockerBench"

state="$(mktemp -d /tmp/lab-bench-dockerd.XXXXXX)"
export BENCH="$bench" PYTHON="$python" STATE="$state"
timeout 1800 unshare -n bash -c '
    set -e
    ip link set lo up
    eval "$(scripts/dockerd.sh start "$STATE")"
    trap "scripts/dockerd.sh stop \"$STATE\"" EXIT
    scripts/base-image.sh import
    "$BENCH" --python "$PYTHON" --py-script bench/docker_py_bench.py "$@"
' bench "$@"
rm -rf "$state"  # after stop: dockerd.sh unmounted what dockerd left there
