#!/usr/bin/env bash
# README benchmark command for the worker: relay-worker vs ai-relay 0.4.46 (same run, same fake CLI).
# Builds in release mode (the first release build of the dependencies takes several minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
source "${LAB_CACHE:-/root/.cache/lab}/env.sh"
config="${BENCH_CONFIG:-release}"
swift build -c "$config" --product relay-worker
swift build -c "$config" --product RelayBench
bin=$(swift build -c "$config" --show-bin-path)
exec unshare -n sh -c 'ip link set lo up; exec "$0" bench/relay_bench.py --worker "$1/relay-worker" --bench "$1/RelayBench" --reference "$2" "$3" "$4" "$5" "$6"' \
  "$LAB_PYTHON" "$bin" "$AI_RELAY_BIN" --lines "${BENCH_LINES:-100000}" --idle "${BENCH_IDLE:-200}"
