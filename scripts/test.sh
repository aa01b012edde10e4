#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, and runs every test —
# Swift unit/Docker tests and the end-to-end pytest suites — inside a loopback-only network
# namespace with a private dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# shellcheck disable=SC1091
source "${LAB_CACHE:-/root/.cache/lab}/env.sh"
bash scripts/base-image.sh fetch          # debootstrap needs the apt mirror: outside the namespace

echo "== building (first build of the dependencies takes several minutes on 2 cores)"
swift build --build-tests

exec unshare -n bash scripts/test-in-netns.sh "$@"
