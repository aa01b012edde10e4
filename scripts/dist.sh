#!/usr/bin/env bash
# Puts already-built binaries and the shared libraries they need into dist/, for
# `docker build --build-arg BINARIES=prebuilt` on machines that cannot compile inside Docker
# (no registry for the Swift image, or no time for a release build):
#
#   dist/bin/      relay-worker, labctrl (debug info stripped: the images stay small; symbols remain)
#   dist/lib/      the Swift runtime and Foundation libraries (from the toolchain; no Debian base has them)
#   dist/syslib/   Debian libraries beyond glibc/libstdc++/zlib (libcurl and its dependencies): the
#                  Dockerfile installs only those its runtime base lacks, when apt cannot reach a mirror
#
#   scripts/dist.sh [debug|release]          (default debug)
#   DIST_BIN_DIR=DIR scripts/dist.sh         take the binaries from DIR instead of .build/<config>
#
# The binaries are built with `swift build --product …` only when missing. The host should run the same
# Debian release as the runtime base (bookworm), as the copied system libraries come from the host.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-debug}"
case "$config" in debug|release) ;; *) echo "usage: $0 [debug|release]" >&2; exit 2 ;; esac

# .build/<config> avoids `swift build --show-bin-path`, which waits for SwiftPM's build lock.
bin="${DIST_BIN_DIR:-}"
if [[ -z $bin ]]; then
    if [[ -d .build/$config ]]; then bin=".build/$config"; else bin=$(swift build -c "$config" --show-bin-path); fi
fi
for b in relay-worker labctrl; do
    [[ -x $bin/$b ]] || swift build -c "$config" --product "$b"
done

# Everything of glibc, the C++ runtime and zlib is in every Debian base image (minbase included).
base_lib='/(libc|libm|libdl|librt|libpthread|libresolv|libutil|libgcc_s|libstdc\+\+|libz)\.so'

tmp=$(mktemp -d dist.tmp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/lib" "$tmp/syslib"
for b in relay-worker labctrl; do
    if command -v strip >/dev/null; then
        strip --strip-debug -o "$tmp/bin/$b" "$bin/$b"
    else
        cp "$bin/$b" "$tmp/bin/"
    fi
    # ldd lists the whole closure; copies are named by soname (what the dynamic loader looks up).
    while read -r name path; do
        case "$path" in
            /lib/*|/lib64/*|/usr/lib/*|/usr/lib64/*)
                [[ $path =~ $base_lib ]] || cp -nL "$path" "$tmp/syslib/$name" ;;
            /*) cp -nL "$path" "$tmp/lib/$name" ;;   # the Swift toolchain (e.g. /opt/swift/usr/lib/swift/linux)
        esac
    done < <(ldd "$bin/$b" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
done
rm -rf dist
mv "$tmp" dist
trap - EXIT
chmod 755 dist
echo "dist/: $(du -sh dist | cut -f1) — bin: $(ls dist/bin | xargs), lib: $(ls dist/lib | wc -l) Swift runtime libraries, syslib: $(ls dist/syslib | wc -l) system libraries"
