#!/usr/bin/env bash
# Attacks the live controller's HTTP API with schemathesis against docs/openapi.yaml: starts labctrl
# (debug build) in single mode on a loopback port with a tokens file and an admin token, runs every
# check, stops labctrl by PID, and fails on any finding, on a labctrl crash, or if labctrl is dead after.
# Run it inside the loopback-only namespace (scripts/test-in-netns.sh does). Bounded by
# LAB_ST_SECS (default 100 s of schemathesis time) and LAB_ST_EXAMPLES (default 50 per operation).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source "${LAB_CACHE:-/root/.cache/lab}/env.sh"
st=${LAB_SCHEMATHESIS:-$LAB_VENV/bin/st}
labctrl=.build/debug/labctrl
worker=.build/debug/relay-worker
[ -x "$labctrl" ] && [ -x "$worker" ] || { echo "schemathesis: build first (swift build)" >&2; exit 1; }

dir=$(mktemp -d /tmp/lab-schemathesis.XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
alice=$(token) bob=$(token) admin=$(token)
printf 'alice %s\nbob %s\n' "$alice" "$bob" >"$dir/tokens"
chmod 600 "$dir/tokens"
py="$LAB_VENV/bin/python"
healthy() { "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://127.0.0.1:$port/healthz" 2>/dev/null; }
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

env -i PATH="$PATH" HOME="$dir" \
    LAB_MODE=single LAB_HOST=127.0.0.1 LAB_PORT="$port" LAB_TOKENS_FILE="$dir/tokens" LAB_ADMIN_TOKEN="$admin" \
    LAB_SINGLE_SHARED_ACCOUNT=true LAB_WORKSPACE_ROOT="$dir/ws" LAB_WORKER_BINARY="$PWD/$worker" \
    LAB_MAX_WORKERS=1000 LAB_LOG_LEVEL=notice \
    "$labctrl" >"$dir/labctrl.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
    healthy && break
    kill -0 "$pid" 2>/dev/null || { echo "schemathesis: labctrl exited at start" >&2; cat "$dir/labctrl.log" >&2; exit 1; }
    sleep 0.1
done

# Credentials per security scheme of the document: alice for the user routes, the admin token for /v1/workers.
cat >"$dir/schemathesis.toml" <<TOML
[auth.openapi.bearer]
bearer = "$alice"
[auth.openapi.tokenQuery]
api_key = "$alice"
[auth.openapi.tokenCookie]
api_key = "$alice"
[auth.openapi.adminBearer]
bearer = "$admin"

# A plain GET on /ws with a valid credential is refused with 426 (not an upgrade): the right answer.
[[operations]]
include-operation-id = "websocket"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "426", "429"]
TOML

status=0
timeout 170 "$st" --config-file "$dir/schemathesis.toml" run docs/openapi.yaml \
    --url "http://127.0.0.1:$port" --checks all --max-examples "${LAB_ST_EXAMPLES:-50}" \
    --max-time "${LAB_ST_SECS:-100}" --request-timeout 10 --generation-database none \
    --report junit --report-dir "$dir/report" --no-color \
    || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
    echo "schemathesis: labctrl died during the run" >&2
    status=1
elif ! healthy; then
    echo "schemathesis: labctrl no longer answers /healthz" >&2
    status=1
fi
if grep -E "Fatal error|panic|Segmentation|SIGSEGV|SIGILL|SIGTRAP" "$dir/labctrl.log" >&2; then status=1; fi
if [ "$status" -ne 0 ]; then
    echo "schemathesis: FAILED (status $status); labctrl log tail:" >&2
    tail -30 "$dir/labctrl.log" >&2
fi
exit "$status"
