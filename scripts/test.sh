#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, and runs every test —
# Swift unit/Docker tests and the end-to-end pytest suites — inside a loopback-only network
# namespace with a private dockerd.
#
# `--quick` (the everyday tier): Swift unit tests and the process-only suites; no Docker, no browser, no
# fuzzing, no schemathesis. Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export LAB_QUICK=0
if [[ ${1:-} == --quick ]]; then
    LAB_QUICK=1
    shift
fi

bash scripts/setup.sh
# shellcheck disable=SC1091
source "${LAB_CACHE:-/root/.cache/lab}/env.sh"
# debootstrap needs the apt mirror (outside the namespace) and mostly waits on the network: it runs
# while the compiler uses the cores.
base_pid=""
if [[ $LAB_QUICK != 1 ]]; then
    base_log=$(mktemp /tmp/lab-base-image.XXXXXX)
    bash scripts/base-image.sh fetch >"$base_log" 2>&1 &
    base_pid=$!
fi

echo "== building (first build of the dependencies takes several minutes on 2 cores)"
swift build --build-tests

if [[ -n $base_pid ]]; then
    base_rc=0
    wait "$base_pid" || base_rc=$?
    cat "$base_log"
    rm -f "$base_log"
    [[ $base_rc == 0 ]] || { echo "base image: fetch failed (exit $base_rc)" >&2; exit 1; }
fi

status=0
unshare -n bash scripts/test-in-netns.sh "$@" || status=1

# libFuzzer targets: outside the namespace, because the fuzz build (a changed manifest) may resolve
# the dependencies again. Bounded: LAB_FUZZ_SECS per target (scripts/fuzz.sh).
if [[ $LAB_QUICK != 1 ]]; then
    echo "== fuzzing (scripts/fuzz.sh)"
    bash scripts/fuzz.sh || status=1
fi
exit $status
