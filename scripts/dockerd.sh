#!/usr/bin/env bash
# A private Docker daemon for tests and benchmarks, in the CURRENT network namespace.
#
# The caller isolates the network first:  unshare -n sh -c 'ip link set lo up; scripts/dockerd.sh start DIR; ...'
#
#   scripts/dockerd.sh start <statedir>       dockerd on unix://<statedir>/docker.sock; prints `export DOCKER_HOST=…`
#   scripts/dockerd.sh start-tls <statedir> [port]
#                                             dockerd on tcp://127.0.0.1:<port> with TLS client verification; the
#                                             CA, server (SAN 127.0.0.1) and client certificates are generated with
#                                             openssl into <statedir>/certs; prints DOCKER_HOST, DOCKER_TLS_VERIFY
#                                             and DOCKER_CERT_PATH exports.
#   scripts/dockerd.sh stop <statedir>        stops the daemon whose PID is in <statedir>/docker.pid (by PID only).
#
# LAB_DOCKERD_IPTABLES=true lets the daemon write iptables rules: only inside a test's own network
# namespace (integration/labctrl's dockerd, for the inter-container isolation of LAB_NETWORK).
# Why these flags: no bridge and no iptables, so the daemon never touches the host's network (containers use
# network mode `host`, i.e. the caller's private namespace). The data root persists across runs under
# $LAB_CACHE so imported images survive; a lock file keeps it to one daemon at a time, and a second daemon
# falls back to a throw-away data root inside <statedir>.
#
# Environment: LAB_CACHE (default /root/.cache/lab), LAB_DOCKERD_DATA / LAB_DOCKERD_TLS_DATA (data roots,
# default $LAB_CACHE/dockerd-data and $LAB_CACHE/dockerd-data-tls), LAB_DOCKERD_STORAGE (default overlay2;
# use vfs where the data root is itself on overlayfs), LAB_DOCKERD_WAIT (start-up limit, default 60 s),
# DOCKERD (binary), LAB_DOCKERD_ARGS (extra daemon flags for `start`, e.g. --live-restore). The daemon's
# log is <statedir>/dockerd.log.
set -euo pipefail

CACHE="${LAB_CACHE:-/root/.cache/lab}"
DOCKERD="${DOCKERD:-dockerd}"
WAIT_SECS="${LAB_DOCKERD_WAIT:-60}"

log() { echo "dockerd.sh: $*" >&2; }

# pick_data_root <default root> <statedir>: prints the data root to use (its lock file is "<root>.lock").
pick_data_root() {
    local root="$1" state="$2"
    mkdir -p "$root"
    if flock -n "$root.lock" true; then
        echo "$root"
    else
        log "data root $root is in use by another dockerd; using $state/data (images must be re-imported)"
        mkdir -p "$state/data"
        echo "$state/data"
    fi
}

# Closes every descriptor above stderr. The daemon must not keep its caller's pipes or sockets open: a
# caller that waits for EOF on our stdout, or (like Foundation's Process) for a socket to close, would
# otherwise wait as long as dockerd lives.
close_inherited_fds() {
    local fd
    for fd in /proc/$BASHPID/fd/*; do
        fd="${fd##*/}"
        ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null || true
    done
}

# launch <statedir> <data root> <ping command...> -- <extra dockerd args...>
launch() {
    local state="$1" root="$2"; shift 2
    local ping=()
    while [[ $1 != -- ]]; do ping+=("$1"); shift; done
    shift
    if [[ -s $state/docker.pid ]] && kill -0 "$(cat "$state/docker.pid")" 2>/dev/null; then
        log "a dockerd is already running for $state (pid $(cat "$state/docker.pid"))"; exit 1
    fi
    rm -f "$state/docker.pid"
    echo "$root" > "$state/data-root"
    # flock holds the data-root lock for exactly as long as dockerd lives.
    (
        close_inherited_fds
        exec flock -n -E 75 "$root.lock" \
            "$DOCKERD" --bridge=none --iptables="${LAB_DOCKERD_IPTABLES:-false}" --ip6tables=false --ip-masq=false \
            --storage-driver="${LAB_DOCKERD_STORAGE:-overlay2}" \
            --data-root "$root" --exec-root "$state/exec" --pidfile "$state/docker.pid" \
            "$@" >"$state/dockerd.log" 2>&1 </dev/null
    ) &
    local launcher=$!
    local deadline=$((SECONDS + WAIT_SECS))
    until "${ping[@]}" >/dev/null 2>&1; do
        if ! kill -0 "$launcher" 2>/dev/null; then
            log "dockerd exited during start-up; last log lines:"; tail -n 20 "$state/dockerd.log" >&2; exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "dockerd did not answer /_ping within ${WAIT_SECS}s; see $state/dockerd.log"
            [[ -s $state/docker.pid ]] && kill -TERM "$(cat "$state/docker.pid")" 2>/dev/null || true
            exit 1
        fi
        sleep 0.1
    done
}

start() {
    local state="${1:?usage: $0 start <statedir>}"
    mkdir -p "$state"; state="$(cd "$state" && pwd)"
    local sock="$state/docker.sock"
    local root; root="$(pick_data_root "${LAB_DOCKERD_DATA:-$CACHE/dockerd-data}" "$state")"
    # shellcheck disable=SC2086 # LAB_DOCKERD_ARGS is a list of extra flags, e.g. --live-restore
    launch "$state" "$root" curl -fsS --max-time 2 --unix-socket "$sock" http://localhost/_ping -- -H "unix://$sock" ${LAB_DOCKERD_ARGS:-}
    log "ready: unix://$sock (pid $(cat "$state/docker.pid"), data root $root)"
    echo "export DOCKER_HOST=unix://$sock"
}

# make_certs <dir>: a CA, a server certificate for 127.0.0.1 and a client certificate, as docker expects them.
make_certs() {
    local d="$1"
    mkdir -p "$d"; cd "$d"
    [[ -s ca.pem && -s cert.pem && -s key.pem && -s server-cert.pem ]] && return 0
    openssl genrsa -out ca-key.pem 2048 2>/dev/null
    openssl req -new -x509 -days 30 -key ca-key.pem -sha256 -subj "/CN=lab-test-ca" -out ca.pem 2>/dev/null
    openssl genrsa -out server-key.pem 2048 2>/dev/null
    openssl req -new -key server-key.pem -subj "/CN=127.0.0.1" -out server.csr 2>/dev/null
    printf 'subjectAltName = IP:127.0.0.1,DNS:localhost\nextendedKeyUsage = serverAuth\n' > server-ext.cnf
    openssl x509 -req -days 30 -sha256 -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -extfile server-ext.cnf -out server-cert.pem 2>/dev/null
    openssl genrsa -out key.pem 2048 2>/dev/null
    openssl req -new -key key.pem -subj "/CN=lab-test-client" -out client.csr 2>/dev/null
    printf 'extendedKeyUsage = clientAuth\n' > client-ext.cnf
    openssl x509 -req -days 30 -sha256 -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -extfile client-ext.cnf -out cert.pem 2>/dev/null
    chmod 600 ca-key.pem server-key.pem key.pem
    rm -f server.csr client.csr
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_tls() {
    local state="${1:?usage: $0 start-tls <statedir> [port]}"
    mkdir -p "$state"; state="$(cd "$state" && pwd)"
    local port="${2:-$(free_port)}"
    local certs="$state/certs"
    (make_certs "$certs")
    local root; root="$(pick_data_root "${LAB_DOCKERD_TLS_DATA:-$CACHE/dockerd-data-tls}" "$state")"
    launch "$state" "$root" \
        curl -fsS --max-time 2 --cacert "$certs/ca.pem" --cert "$certs/cert.pem" --key "$certs/key.pem" \
        "https://127.0.0.1:$port/_ping" -- \
        --tlsverify --tlscacert "$certs/ca.pem" --tlscert "$certs/server-cert.pem" --tlskey "$certs/server-key.pem" \
        -H "tcp://127.0.0.1:$port" -H "unix://$state/docker.sock"
    log "ready: tcp://127.0.0.1:$port with TLS (pid $(cat "$state/docker.pid"))"
    echo "export DOCKER_HOST=tcp://127.0.0.1:$port"
    echo "export DOCKER_TLS_VERIFY=1"
    echo "export DOCKER_CERT_PATH=$certs"
}

# Unmounts everything under the state dir, deepest first: dockerd leaves bind mounts of network namespaces
# under its exec root (they keep the namespace alive), and a private mount of a data root kept inside the
# state dir. Runs only once the daemon is gone; nothing outside the state dir is touched.
unmount_state() {
    local state="$1" mounts m
    mounts="$(awk -v prefix="$state/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r)"
    [[ -n $mounts ]] || return 0
    while IFS= read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
    done <<<"$mounts"
}

stop() {
    local state="${1:?usage: $0 stop <statedir>}"
    state="$(cd "$state" 2>/dev/null && pwd || echo "$state")"
    local pidfile="$state/docker.pid" pid=""
    [[ -s $pidfile ]] && pid="$(cat "$pidfile")"
    if [[ -n $pid && "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then
        kill -TERM "$pid"
        local deadline=$((SECONDS + 40))
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                log "dockerd $pid ignored SIGTERM for 40s; sending SIGKILL"
                kill -KILL "$pid" || true
            fi
            sleep 0.1
        done
        log "stopped dockerd $pid"
    else
        log "no running dockerd for $state"
    fi
    rm -f "$pidfile"
    unmount_state "$state"
    # A throw-away data root inside the state dir is removed, unless something is still mounted under it.
    if [[ "$(cat "$state/data-root" 2>/dev/null)" == "$state/data" ]] && ! grep -q " $state/data" /proc/self/mountinfo; then
        rm -rf "$state/data"
    fi
}

case "${1:-}" in
    start) start "${2:-}" ;;
    start-tls) start_tls "${2:-}" "${3:-}" ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 start|start-tls|stop <statedir> [port]" >&2; exit 2 ;;
esac
