#!/usr/bin/env bash
# The README's run command: builds and starts the lab in single mode on loopback. The controller
# prints the URL (with a generated token) to open in a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swift >/dev/null; then echo "Swift 6 is required (https://swift.org/install)" >&2; exit 1; fi
swift build --product relay-worker
swift build --product labctrl
bin=$(swift build --show-bin-path)
export LAB_MODE=single LAB_HOST="${LAB_HOST:-127.0.0.1}" LAB_PORT="${LAB_PORT:-8080}"
export LAB_WORKSPACE_ROOT="${LAB_WORKSPACE_ROOT:-$HOME/lab-workspaces}"
mkdir -p "$LAB_WORKSPACE_ROOT"
exec "$bin/labctrl" "$@"
