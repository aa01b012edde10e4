#!/usr/bin/env bash
# README benchmark command for the proxy: labctrl vs nginx vs direct (bench/proxy_bench.py), release build.
# Installs Debian's nginx if it is missing, without starting the system service (only the benchmark's
# own nginx runs, inside the loopback-only namespace, and is stopped by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
source "${LAB_CACHE:-/root/.cache/lab}/env.sh"
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    guard=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && guard=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light >/dev/null \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >/dev/null
    [[ -z $guard ]] || rm -f /usr/sbin/policy-rc.d
fi
config="${BENCH_CONFIG:-release}"
for p in relay-worker labctrl RelayBench; do swift build -c "$config" --product "$p"; done
bin=$(swift build -c "$config" --show-bin-path)
exec unshare -n sh -c 'ip link set lo up; exec "$0" bench/proxy_bench.py --worker "$1/relay-worker" --labctrl "$1/labctrl" --bench "$1/RelayBench" "$2" "$3"' \
  "$LAB_PYTHON" "$bin" --lines "${BENCH_LINES:-20000}" --line-bytes "${BENCH_LINE_BYTES:-1024}"
