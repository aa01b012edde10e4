#!/usr/bin/env bash
# Builds the user-container image for tests and benchmarks, FROM lab-base:bookworm (scripts/base-image.sh),
# with no registry and no network:
#   - relay-worker (RELAY_WORKER_BIN, default the newer of .build/release/relay-worker and .build/debug/relay-worker)
#   - the Swift runtime libraries it links, found with ldd, copied to the same paths (its RUNPATH points there)
#   - the real claude binary (CLAUDE_BIN from $LAB_CACHE/env.sh) as /usr/local/bin/claude
#   - a non-root user labuser (uid/gid 1000) whose home /home/labuser is where the workspace gets mounted
#
#   DOCKER_HOST=unix://… scripts/worker-image.sh [tag]      (default tag: lab-worker:test)
#
# The image is rebuilt only when its inputs change (their hash is stored as the label lab.inputs-hash).
# No RUN step: /etc/passwd and /etc/group are taken from the base tarball and extended here, so building
# never starts a container.
set -euo pipefail

: "${DOCKER_HOST:?set DOCKER_HOST (scripts/dockerd.sh start prints it)}"
CACHE="${LAB_CACHE:-/root/.cache/lab}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
TAG="${1:-${LAB_WORKER_IMAGE:-lab-worker:test}}"
BASE="${LAB_BASE_IMAGE:-lab-base:bookworm}"
DOCKER=/usr/bin/docker; [[ -x $DOCKER ]] || DOCKER=docker
log() { echo "worker-image: $*" >&2; }

[[ -f $CACHE/env.sh ]] && . "$CACHE/env.sh"
WORKER="${RELAY_WORKER_BIN:-}"
if [[ -z $WORKER ]]; then  # the most recently built of release and debug
    for candidate in "$REPO/.build/release/relay-worker" "$REPO/.build/debug/relay-worker"; do
        [[ -x $candidate ]] || continue
        if [[ -z $WORKER || $candidate -nt $WORKER ]]; then WORKER="$candidate"; fi
    done
fi
[[ $WORKER = /* ]] || WORKER="$REPO/$WORKER"
[[ -x $WORKER ]] || { log "relay-worker not found at $WORKER (swift build --product relay-worker)"; exit 1; }
CLAUDE="$(readlink -f "${CLAUDE_BIN:?CLAUDE_BIN unset: run scripts/setup.sh}")"
[[ -x $CLAUDE ]] || { log "claude binary not found at $CLAUDE"; exit 1; }
TARBALL="$("$REPO/scripts/base-image.sh" path)"
[[ -s $TARBALL ]] || { log "$TARBALL missing: run scripts/base-image.sh fetch outside the namespace"; exit 1; }

# Libraries from outside the base system (the Swift toolchain), as ldd resolves them.
mapfile -t LIBS < <(ldd "$WORKER" | awk '$3 ~ /^\// {print $3}' | grep -v -E '^/(usr/)?lib(64)?/' || true)

hash_inputs() {
    {
        sha256sum "$WORKER" | cut -d' ' -f1
        stat -c '%n %s %Y' "$CLAUDE"
        for l in "${LIBS[@]}"; do stat -L -c '%n %s %Y' "$l"; done
        echo "$BASE"
        sha256sum "$0" | cut -d' ' -f1
    } | sha256sum | cut -c1-16
}
HASH="$(hash_inputs)"
if [[ "$(timeout 30 "$DOCKER" image inspect -f '{{index .Config.Labels "lab.inputs-hash"}}' "$TAG" 2>/dev/null || true)" == "$HASH" ]]; then
    log "$TAG is up to date ($HASH)"
    exit 0
fi

CTX="$(mktemp -d "${TMPDIR:-/tmp}/worker-image.XXXXXX")"
trap 'rm -rf "$CTX"' EXIT
mkdir -p "$CTX/root/usr/local/bin" "$CTX/root/etc" "$CTX/home"
cp "$WORKER" "$CTX/root/usr/local/bin/relay-worker"
cp "$CLAUDE" "$CTX/root/usr/local/bin/claude"
for l in "${LIBS[@]}"; do
    mkdir -p "$CTX/root$(dirname "$l")"
    cp -L "$l" "$CTX/root$l"
done
tar -xf "$TARBALL" -C "$CTX/root" ./etc/passwd ./etc/group
grep -q '^labuser:' "$CTX/root/etc/passwd" || echo 'labuser:x:1000:1000:lab user:/home/labuser:/bin/sh' >>"$CTX/root/etc/passwd"
grep -q '^labuser:' "$CTX/root/etc/group" || echo 'labuser:x:1000:' >>"$CTX/root/etc/group"
mkdir -p "$CTX/home/labuser"

cat >"$CTX/Dockerfile" <<EOF
FROM $BASE
COPY root/ /
COPY --chown=1000:1000 home/labuser /home/labuser
ENV HOME=/home/labuser LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin
USER labuser
WORKDIR /home/labuser
LABEL lab.inputs-hash=$HASH
ENTRYPOINT ["relay-worker"]
CMD ["serve", "--host", "0.0.0.0", "--port", "9000"]
EOF

log "building $TAG from $WORKER (+${#LIBS[@]} runtime libraries, claude $(du -h "$CLAUDE" | cut -f1))"
timeout 900 "$DOCKER" build -q --network none -t "$TAG" "$CTX" >&2
log "built $TAG ($HASH)"
