#!/usr/bin/env bash
# Runs inside `unshare -n` (called by scripts/test.sh): only loopback exists here, so nothing a test
# starts (claude, codex, dockerd, containers on --network host) can reach another address.
set -euo pipefail
cd "$(dirname "$0")/.."
ip link set lo up
# shellcheck disable=SC1091
source "${LAB_CACHE:-/root/.cache/lab}/env.sh"

state=$(mktemp -d /tmp/lab-test-dockerd.XXXXXX)
cleanup() { bash scripts/dockerd.sh stop "$state" >/dev/null 2>&1 || true; }
trap cleanup EXIT
eval "$(bash scripts/dockerd.sh start "$state")"
bash scripts/base-image.sh import
export LAB_TEST_DOCKER_HOST="$DOCKER_HOST" LAB_REQUIRE_DOCKER=1

status=0
echo "== swift test"
swift test --skip-build 2>&1 | tee /tmp/lab-swift-test.log || status=1

echo "== integration tests (pytest)"
"$LAB_VENV/bin/pytest" -c integration/pytest.ini integration "$@" || status=1
exit $status
