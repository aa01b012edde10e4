#!/usr/bin/env bash
# Test prerequisites for this repository (idempotent; fast when everything is already there).
#
# Installs the Debian packages the tests need, a Python venv with pytest + the Python reference
# `ai-relay` 0.4.46, and the real `claude` / `codex` binaries (from their PyPI wheels) into
# ${LAB_CACHE:-/root/.cache/lab}. Writes $LAB_CACHE/env.sh with the resulting paths.
#
# Usage:  scripts/setup.sh            (run it)
#         . scripts/setup.sh          (source it: also exports the variables of env.sh)
# Nothing here ever goes into git: every download lives under $LAB_CACHE.

# When sourced: do the work in a child bash (so its `set -e` is not weakened by the caller's
# context), then export the resulting paths into the caller's shell.
if [ -n "${BASH_SOURCE:-}" ] && [ "${BASH_SOURCE[0]}" != "$0" ]; then
    bash "${BASH_SOURCE[0]}" || return $?
    # shellcheck disable=SC1091
    . "${LAB_CACHE:-/root/.cache/lab}/env.sh"
    return 0
fi

set -euo pipefail
LAB_CACHE="${LAB_CACHE:-/root/.cache/lab}"
# The interpreter that creates the venv (never the venv's own python from a previous env.sh).
PYTHON="${LAB_SETUP_PYTHON:-python3}"

# Pinned versions. Bump deliberately, in one place.
AI_RELAY_VERSION=0.4.46
CLAUDE_SDK_VERSION=0.2.186        # bundles Claude Code 2.1.x
CODEX_BIN_VERSION=0.163.0
PY_REQUIREMENTS=(
    "ai-relay==${AI_RELAY_VERSION}"
    "websockets==17.4"
    "click==8.5.1"
    "anyio==4.16.0"
    "pytest==9.2.0"
    "pytest-timeout==2.4.0"
    "docker==7.1.0"
    "requests==2.34.2"
    "urllib3==2.8.0"
    "selenium==4.51.0"            # the console browser test drives Debian's chromium through chromedriver
    "schemathesis==4.32.5"        # scripts/schemathesis.sh: the HTTP API against docs/openapi.yaml
)
APT_PACKAGES=(docker.io debootstrap libcurl4-openssl-dev libssl-dev pkg-config
              iproute2 openssl procps util-linux unzip docker-registry
              chromium chromium-driver docker-compose)   # console browser test; compose.yaml check (Compose 1.29)

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages: apt-get update only when something is missing -------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "installing Debian packages: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

mkdir -p "$LAB_CACHE"

# A bare Debian python3 lacks venv/ensurepip; pyenv/official builds have them.
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    log "installing python3-venv"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
fi
PYTHON="$("$PYTHON" -c 'import sys; print(getattr(sys, "_base_executable", None) or sys.executable)')"

# --- Python venv (stamped with the requirement list, so a pin change reinstalls) ------
VENV="$LAB_CACHE/venv"
stamp_want="$(printf '%s\n' "${PY_REQUIREMENTS[@]}" "$("$PYTHON" -c 'import sys; print(sys.version)')" | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.lab-stamp" 2>/dev/null || true)" != "$stamp_want" ]; then
    log "creating venv $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
    echo "$stamp_want" >"$VENV/.lab-stamp"
fi

# --- Real agent CLIs from their wheels -------------------------------------------------
DL="$LAB_CACHE/dl"
CLIS="$LAB_CACHE/clis"
mkdir -p "$DL" "$CLIS"

# fetch_wheel <pip name> <version> <wheel file prefix>: prints the wheel's path.
fetch_wheel() {
    local name="$1" version="$2" prefix="$3" whl
    whl="$(ls "$DL/${prefix}-${version}-"*.whl 2>/dev/null | head -n1 || true)"
    if [ -z "$whl" ]; then
        log "downloading $name==$version"
        "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps \
            --only-binary=:all: "${name}==${version}" -d "$DL" >&2
        whl="$(ls "$DL/${prefix}-${version}-"*.whl | head -n1)"
    fi
    printf '%s\n' "$whl"
}

# Claude Code: claude_agent_sdk/_bundled/claude → clis/claude-agent-sdk-<v>/bin/claude
CLAUDE_DIR="$CLIS/claude-agent-sdk-$CLAUDE_SDK_VERSION"
if [ ! -x "$CLAUDE_DIR/bin/claude" ]; then
    whl="$(fetch_wheel claude-agent-sdk "$CLAUDE_SDK_VERSION" claude_agent_sdk)"
    tmp="$(mktemp -d "$CLIS/.tmp.XXXXXX")"
    unzip -q -o "$whl" 'claude_agent_sdk/_bundled/*' -d "$tmp"
    mkdir -p "$tmp/out/bin"
    mv "$tmp/claude_agent_sdk/_bundled/claude" "$tmp/out/bin/claude"
    cp "$tmp/claude_agent_sdk/_bundled/claude.version" "$tmp/out/" 2>/dev/null || true
    chmod 0755 "$tmp/out/bin/claude"
    rm -rf "$CLAUDE_DIR"
    mv "$tmp/out" "$CLAUDE_DIR"
    rm -rf "$tmp"
fi

# Codex: keep the wheel's layout (bin/, codex-resources/bwrap, codex-path/rg side by side).
CODEX_DIR="$CLIS/openai-codex-cli-bin-$CODEX_BIN_VERSION"
if [ ! -x "$CODEX_DIR/bin/codex" ]; then
    whl="$(fetch_wheel openai-codex-cli-bin "$CODEX_BIN_VERSION" openai_codex_cli_bin)"
    tmp="$(mktemp -d "$CLIS/.tmp.XXXXXX")"
    unzip -q -o "$whl" 'codex_cli_bin/*' -d "$tmp"
    chmod 0755 "$tmp/codex_cli_bin/bin/"* "$tmp/codex_cli_bin/codex-path/rg" \
        "$tmp/codex_cli_bin/codex-resources/bwrap"
    rm -rf "$CODEX_DIR"
    mv "$tmp/codex_cli_bin" "$CODEX_DIR"
    rm -rf "$tmp"
fi

# --- env file ----------------------------------------------------------------------------
ENV_FILE="$LAB_CACHE/env.sh"
content="$(cat <<EOF
# Generated by scripts/setup.sh — paths of the test prerequisites.
export LAB_CACHE="$LAB_CACHE"
export LAB_VENV="$VENV"
export LAB_PYTHON="$VENV/bin/python"
export AI_RELAY_BIN="$VENV/bin/ai-relay"
export CLAUDE_BIN="$CLAUDE_DIR/bin/claude"
export CODEX_BIN="$CODEX_DIR/bin/codex"
export CLAUDE_VERSION_PIN="$CLAUDE_SDK_VERSION"
export CODEX_VERSION_PIN="$CODEX_BIN_VERSION"
EOF
)"
if [ "$(cat "$ENV_FILE" 2>/dev/null || true)" != "$content" ]; then
    printf '%s\n' "$content" >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
fi
log "ready: . $ENV_FILE"
sed -n 's/^export /  /p' "$ENV_FILE" >&2
