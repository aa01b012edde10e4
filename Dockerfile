# syntax=docker/dockerfile:1
# Multi-stage build of the lab.
#   worker      — user containers: relay-worker as entrypoint, non-root `labuser` (LAB_IMAGE)
#   controller  — labctrl (plus relay-worker for single mode)
# Base images are build arguments, so a machine without a registry can build the runtime stages FROM a
# locally imported Debian base, and from binaries built outside Docker:
#   DOCKER_BUILDKIT=1 docker build --target worker --build-arg RUNTIME_BASE=lab-base:bookworm \
#       --build-arg BINARIES=prebuilt -t ohwise-lab-ctrl:local .     (needs dist/bin and dist/lib, see scripts/dist.sh)
ARG SWIFT_IMAGE=swift:6.1-bookworm
ARG RUNTIME_BASE=debian:bookworm-slim
# `build` compiles in Docker; `prebuilt` takes dist/ from the build context.
ARG BINARIES=build

# ---- build: static Swift stdlib, release --------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends libcurl4-openssl-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY bench ./bench
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product relay-worker \
    && swift build -c release --static-swift-stdlib --product labctrl \
    && mkdir -p /out/bin /out/lib \
    && cp "$(swift build -c release --show-bin-path)/relay-worker" "$(swift build -c release --show-bin-path)/labctrl" /out/bin/

# ---- prebuilt: binaries (and the shared Swift runtime, if not static) from dist/ -----------------
FROM scratch AS prebuilt
COPY dist/ /out/

FROM ${BINARIES} AS binaries

# ---- worker: what runs in each user's container ------------------------------------------------
FROM ${RUNTIME_BASE} AS worker
ARG LAB_CONTAINER_USER=labuser
ARG LAB_CONTAINER_UID=1000
# libcurl/ca-certificates for the agents; room for the agent CLIs (install them in a derived image,
# e.g. `FROM ohwise-lab-ctrl:local` + `npm i -g @anthropic-ai/claude-code`).
RUN set -eu; \
    if command -v apt-get >/dev/null && [ -d /var/lib/apt ]; then \
      (apt-get update && apt-get install -y --no-install-recommends ca-certificates libcurl4 tini \
        && rm -rf /var/lib/apt/lists/*) || echo "apt not reachable: keeping the base image as is"; \
    fi; \
    useradd --create-home --uid "${LAB_CONTAINER_UID}" --shell /bin/bash "${LAB_CONTAINER_USER}"
COPY --from=binaries /out/bin/relay-worker /usr/local/bin/relay-worker
COPY --from=binaries /out/lib/ /usr/local/lib/lab/
RUN echo /usr/local/lib/lab > /etc/ld.so.conf.d/lab.conf && ldconfig && relay-worker --help >/dev/null
USER ${LAB_CONTAINER_USER}
WORKDIR /home/${LAB_CONTAINER_USER}
ENV LAB_CONTAINER_PORT=9000
EXPOSE 9000
# The worker confines sessions to the user's home (the workspace mount).
ENTRYPOINT ["/bin/sh", "-c", "exec relay-worker serve --host 0.0.0.0 --port \"${LAB_CONTAINER_PORT}\" --workspace-root \"$HOME\" \"$@\"", "relay-worker"]

# ---- controller ---------------------------------------------------------------------------------
FROM ${RUNTIME_BASE} AS controller
RUN set -eu; \
    if command -v apt-get >/dev/null && [ -d /var/lib/apt ]; then \
      (apt-get update && apt-get install -y --no-install-recommends ca-certificates libcurl4 \
        && rm -rf /var/lib/apt/lists/*) || echo "apt not reachable: keeping the base image as is"; \
    fi
COPY --from=binaries /out/bin/ /usr/local/bin/
COPY --from=binaries /out/lib/ /usr/local/lib/lab/
RUN echo /usr/local/lib/lab > /etc/ld.so.conf.d/lab.conf && ldconfig && labctrl --help >/dev/null
ENV LAB_HOST=0.0.0.0 LAB_PORT=8080
EXPOSE 8080
ENTRYPOINT ["labctrl"]
