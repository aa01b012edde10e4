# Multi-stage build of the lab (BuildKit: only the stages a target needs are built).
#   worker      — user containers (LAB_IMAGE): relay-worker as entrypoint in `serve` mode, non-root `labuser`
#   controller  — labctrl, plus relay-worker for single mode
#
# Default (needs a registry and the Swift package index):
#   DOCKER_BUILDKIT=1 docker build --target worker     -t ohwise-lab-ctrl:local .     (LAB_IMAGE's default)
#   DOCKER_BUILDKIT=1 docker build --target controller -t lab-controller:local .
# Offline, from binaries built on the host (scripts/dist.sh) and a locally imported Debian base
# (scripts/base-image.sh) — the Swift image is then never pulled:
#   scripts/dist.sh && DOCKER_BUILDKIT=1 docker build --network none --target worker \
#       --build-arg BINARIES=prebuilt --build-arg RUNTIME_BASE=lab-base:bookworm -t ohwise-lab-ctrl:local .
# (`--network none`: an engine without a default bridge, like scripts/dockerd.sh's, cannot run RUN steps
# on the default network; apt then fails fast and dist/syslib fills in.) integration/ship/ tests this.
#
# No `# syntax=` line on purpose: the built-in Dockerfile frontend needs no image from a registry.
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_BASE=debian:bookworm-slim
# `build` compiles inside Docker (release, static Swift stdlib); `prebuilt` takes dist/ from the context.
ARG BINARIES=build

# ---- build: release binaries with the Swift stdlib linked in ------------------------------------
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends libcurl4-openssl-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift Package.resolved* ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY bench ./bench
RUN swift build -c release --static-swift-stdlib --product relay-worker \
    && swift build -c release --static-swift-stdlib --product labctrl \
    && mkdir -p /out/bin /out/lib /out/syslib \
    && cp "$(swift build -c release --show-bin-path)/relay-worker" "$(swift build -c release --show-bin-path)/labctrl" /out/bin/

# ---- prebuilt: bin/, lib/ (Swift runtime) and syslib/ (libcurl & co.) from scripts/dist.sh -------
FROM scratch AS prebuilt
COPY dist/ /out/

FROM ${BINARIES} AS binaries

# ---- runtime: what both images share ------------------------------------------------------------
FROM ${RUNTIME_BASE} AS runtime
# The Swift runtime (empty for `build`) goes on the loader path. libcurl comes from apt; where no apt
# mirror is reachable (an offline engine), the copies from dist/syslib fill in exactly the libraries
# the base lacks — a library the base already has is never shadowed.
COPY --from=binaries /out/lib/ /usr/local/lib/lab/
COPY --from=binaries /out/syslib/ /usr/local/lib/lab-syslib/
RUN set -eu; \
    if command -v apt-get >/dev/null; then \
      (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libcurl4 \
        && rm -rf /var/lib/apt/lists/*) >/tmp/apt.log 2>&1 || echo "apt not reachable: keeping the base image's packages"; \
      rm -f /tmp/apt.log; \
    fi; \
    echo /usr/local/lib/lab > /etc/ld.so.conf.d/lab.conf; \
    ldconfig; \
    for f in /usr/local/lib/lab-syslib/*; do \
      [ -e "$f" ] || continue; \
      ldconfig -p | grep -q "^[[:space:]]$(basename "$f") " || mv "$f" /usr/local/lib/lab/; \
    done; \
    rm -rf /usr/local/lib/lab-syslib; \
    ldconfig
ENV LANG=C.UTF-8

# ---- worker: what runs in each user's container ------------------------------------------------
# Install agent CLIs in a derived image, outside $HOME (the user's workspace is mounted over it):
#   FROM ohwise-lab-ctrl:local
#   USER root
#   RUN apt-get update && apt-get install -y nodejs npm && npm install -g @anthropic-ai/claude-code
#   USER labuser
FROM runtime AS worker
ARG LAB_CONTAINER_USER=labuser
ARG LAB_CONTAINER_UID=1000
ARG LAB_CONTAINER_GID=1000
RUN groupadd --gid "${LAB_CONTAINER_GID}" "${LAB_CONTAINER_USER}" \
    && useradd --create-home --uid "${LAB_CONTAINER_UID}" --gid "${LAB_CONTAINER_GID}" --shell /bin/bash "${LAB_CONTAINER_USER}"
COPY --from=binaries /out/bin/relay-worker /usr/local/bin/relay-worker
RUN relay-worker --help >/dev/null
USER ${LAB_CONTAINER_USER}
ENV HOME=/home/${LAB_CONTAINER_USER} LAB_CONTAINER_PORT=9000
WORKDIR /home/${LAB_CONTAINER_USER}
EXPOSE 9000
# Sessions are confined to $HOME (the user's workspace). labctrl starts containers with its own
# command line (`relay-worker serve --port … --workspace-root …`); this default serves `docker run`.
ENTRYPOINT ["/bin/sh", "-c", "exec relay-worker serve --host 0.0.0.0 --port \"${LAB_CONTAINER_PORT}\" --workspace-root \"$HOME\" \"$@\"", "relay-worker"]

# ---- controller ---------------------------------------------------------------------------------
FROM runtime AS controller
COPY --from=binaries /out/bin/labctrl /out/bin/relay-worker /usr/local/bin/
RUN labctrl --help >/dev/null && relay-worker --help >/dev/null
ENV LAB_HOST=0.0.0.0 LAB_PORT=8080
EXPOSE 8080
ENTRYPOINT ["labctrl"]
