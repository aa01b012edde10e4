#!/usr/bin/env bash
# Provides the local base image `lab-base:bookworm` without any registry.
#
#   scripts/base-image.sh fetch    build the Debian bookworm rootfs tarball with debootstrap (needs the apt
#                                  mirror, so run it OUTSIDE `unshare -n`); cached under $LAB_CACHE.
#   scripts/base-image.sh import   `docker import` the cached tarball into the engine named by DOCKER_HOST
#                                  (runs inside the netns; no network needed). No-op if the tag exists.
#   scripts/base-image.sh path     print the tarball path.
#
# Why debootstrap: no registry pull is possible here, and a minbase rootfs (~90 MB tar) gives a real
# /bin/sh, coreutils and users for container tests.
set -euo pipefail

CACHE="${LAB_CACHE:-/root/.cache/lab}"
TARBALL="$CACHE/base/lab-base-bookworm.tar"
TAG="${LAB_BASE_IMAGE:-lab-base:bookworm}"

mirror() {
    # First `URIs:` entry of the stanza whose Suites list "bookworm" (the main archive, not security).
    local f=/etc/apt/sources.list.d/debian.sources
    if [[ -f $f ]]; then
        awk '/^URIs:/ {u=$2} /^Suites:/ { for (i=2;i<=NF;i++) if ($i=="bookworm") { print u; exit } }' "$f"
    fi
}

fetch() {
    if [[ -s $TARBALL ]]; then
        echo "base-image: cached $TARBALL" >&2
        return 0
    fi
    if ! command -v debootstrap >/dev/null; then
        echo "base-image: installing debootstrap" >&2
        timeout 300 apt-get install -y debootstrap >&2
    fi
    local m; m="$(mirror)"; m="${m:-http://deb.debian.org/debian}"
    mkdir -p "$CACHE/base"
    ROOTFS_DIR="$(mktemp -d "$CACHE/base/rootfs.XXXXXX")"
    trap 'rm -rf "$ROOTFS_DIR"' EXIT
    local dir="$ROOTFS_DIR"
    echo "base-image: debootstrap minbase bookworm from $m (about 2 minutes)" >&2
    timeout 900 debootstrap --variant=minbase bookworm "$dir" "$m" >&2
    # Drop apt lists and caches: they are large and useless without network.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar --numeric-owner -C "$dir" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    echo "base-image: wrote $TARBALL" >&2
}

import() {
    : "${DOCKER_HOST:?set DOCKER_HOST (scripts/dockerd.sh start prints it)}"
    local docker=/usr/bin/docker; [[ -x $docker ]] || docker=docker
    if timeout 30 "$docker" image inspect "$TAG" >/dev/null 2>&1; then
        echo "base-image: $TAG present" >&2
        return 0
    fi
    [[ -s $TARBALL ]] || { echo "base-image: $TARBALL missing; run '$0 fetch' outside the netns first" >&2; exit 1; }
    echo "base-image: importing $TARBALL as $TAG" >&2
    timeout 300 "$docker" import "$TARBALL" "$TAG" >&2
}

case "${1:-}" in
    fetch) fetch ;;
    import) import ;;
    path) echo "$TARBALL" ;;
    *) echo "usage: $0 fetch|import|path" >&2; exit 2 ;;
esac
