#!/usr/bin/env bash
# Runs inside `unshare -n` (called by scripts/test.sh): only loopback exists here, so nothing a test
# starts (claude, codex, dockerd, containers on --network host) can reach another address.
set -euo pipefail
cd "$(dirname "$0")/.."
ip link set lo up
# shellcheck disable=SC1091
source "${LAB_CACHE:-/root/.cache/lab}/env.sh"

status=0
if [[ ${LAB_QUICK:-0} == 1 ]]; then
    # Quick tier: Docker suites skip (LAB_TEST_DOCKER=0, no LAB_TEST_DOCKER_HOST), no browser suite.
    export LAB_TEST_DOCKER=0
    echo "== swift test (quick: no Docker engine)"
    swift test --skip-build 2>&1 | tee /tmp/lab-swift-test.log || status=1
    echo "== integration tests (quick: process-only suites)"
    "$LAB_VENV/bin/pytest" -c integration/pytest.ini integration --ignore=integration/ship "$@" || status=1
    exit $status
fi

state=$(mktemp -d /tmp/lab-test-dockerd.XXXXXX)
cleanup() { bash scripts/dockerd.sh stop "$state" >/dev/null 2>&1 || true; }
trap cleanup EXIT
eval "$(bash scripts/dockerd.sh start "$state")"
bash scripts/base-image.sh import
export LAB_TEST_DOCKER_HOST="$DOCKER_HOST" LAB_REQUIRE_DOCKER=1

echo "== swift test"
swift test --skip-build 2>&1 | tee /tmp/lab-swift-test.log || status=1

echo "== schemathesis: the HTTP API against docs/openapi.yaml"
bash scripts/schemathesis.sh || status=1

echo "== integration tests (pytest)"
"$LAB_VENV/bin/pytest" -c integration/pytest.ini integration "$@" || status=1

# A short soak on the same engine: users with turns, permissions, disconnects and reaps; fails on growth,
# on an error event, on anything left behind (bench/soak.py; its 30-minute run is a README command).
echo "== soak (bench/soak.py, 12 users, 3 minutes)"
"$LAB_PYTHON" bench/soak.py --users 12 --minutes 3 --docker-host "$DOCKER_HOST" || status=1
exit $status
