#!/usr/bin/env bash
# Puts already-built binaries and the shared libraries they need into dist/ (bin/ and lib/), for
# `docker build --build-arg BINARIES=prebuilt` on machines that cannot compile inside Docker.
#   scripts/dist.sh [debug|release]
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-debug}"
bin=$(swift build -c "$config" --show-bin-path)
rm -rf dist && mkdir -p dist/bin dist/lib
for b in relay-worker labctrl; do
    [[ -x $bin/$b ]] || swift build -c "$config" --product "$b"
    cp "$bin/$b" dist/bin/
    # Swift runtime and Foundation libraries (everything under the toolchain, which a Debian base lacks).
    ldd "$bin/$b" | awk '/=> \// {print $3}' | grep -E '/swift|libFoundation|libdispatch|libBlocksRuntime|libswift|lib_FoundationICU|libicu' \
        | xargs -r -I{} cp -nL {} dist/lib/
done
echo "dist/: $(du -sh dist | cut -f1)"
