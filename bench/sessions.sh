#!/usr/bin/env bash
# README benchmark command for durable sessions: re-attach latency of a 10 000-event session (live and
# after a worker restart) and bytes on disk per event (bench/session_bench.py). The events/s with the log
# on disk vs ai-relay are in bench/relay.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
source "${LAB_CACHE:-/root/.cache/lab}/env.sh"
config="${BENCH_CONFIG:-release}"
swift build -c "$config" --product relay-worker
swift build -c "$config" --product RelayBench
bin=$(swift build -c "$config" --show-bin-path)
exec unshare -n sh -c 'ip link set lo up; exec "$0" bench/session_bench.py --worker "$1/relay-worker" --bench "$1/RelayBench" --events "$2"' \
  "$LAB_PYTHON" "$bin" "${BENCH_EVENTS:-10000}"
