#!/usr/bin/env python3
"""Proxy benchmark: labctrl's WebSocket proxy against nginx, on the same worker and the same stream.

Three paths to one kind of worker (the same relay-worker binary, the same fake `claude` in bench mode:
every turn streams N assistant lines of about B bytes, then a result):

  direct    client → relay-worker (standalone, --token-file)
  nginx     client → nginx (Debian's, worker_processes auto, proxy_buffering off) → that same worker
  labctrl   client → labctrl /ws (single mode, frame inspection and firewall on) → labctrl's worker

The client is bench/RelayBench (Swift), so it is not the bottleneck. For each path it prints events/s of
a streamed turn (median of --runs) and the round trip of a `/cost` prompt (answered by the worker itself,
so it measures transport and proxy) at p50/p99; then the ratios labctrl/nginx and the latency each proxy
adds over direct. Run it with bench/proxy.sh (installs nginx, builds release binaries, loopback only).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchsupport import free_port, stop, wait_port  # noqa: E402

FAKE = ROOT / "integration" / "fakes" / "fake_claude.py"
TOKEN = "bench-worker-token-0123456789abcdef0123456789"
USER_TOKEN = "token-bench-0123456789abcdef"


NGINX_CONF = """worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    tcp_nodelay on;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"""


def bench(a, url: str, folder: str, pid: int, header: str) -> dict:
    argv = [a.bench, "--url", url, "--folder", folder, "--pid", str(pid), "--runs", str(a.runs),
            "--idle", "0", "--latency", str(a.latency), "--header", header]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"RelayBench failed for {url}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True)
    ap.add_argument("--labctrl", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--line-bytes", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--latency", type=int, default=2000)
    a = ap.parse_args()
    a.worker, a.labctrl, a.bench = (os.path.abspath(x) for x in (a.worker, a.labctrl, a.bench))
    if not Path(a.nginx).exists():
        raise SystemExit(f"nginx not found at {a.nginx} (bench/proxy.sh installs Debian's)")

    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bindir = tmp / "bin"
        bindir.mkdir()
        shim = bindir / "claude"
        shim.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
        shim.chmod(0o755)
        fake_env = {"FAKE_CLAUDE_LINES": str(a.lines), "FAKE_CLAUDE_LINE_BYTES": str(a.line_bytes)}
        path = f"{bindir}:/usr/local/bin:/usr/bin:/bin"
        work = tmp / "work"
        work.mkdir()
        try:
            # direct: a standalone worker with a token
            (tmp / "worker-token").write_text(TOKEN + "\n")
            (tmp / "worker-token").chmod(0o600)
            wport = free_port()
            worker = subprocess.Popen(
                [a.worker, "serve", "--host", "127.0.0.1", "--port", str(wport), "--token-file", str(tmp / "worker-token")],
                env={"PATH": path, "HOME": str(tmp), "LANG": "C.UTF-8", **fake_env}, cwd=work,
                stdout=open(tmp / "worker.log", "w"), stderr=subprocess.STDOUT)
            procs.append(worker)
            wait_port(wport, worker, "relay-worker")

            # nginx in front of that worker
            nport = free_port()
            (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=nport, upstream=wport))
            nginx = subprocess.Popen([a.nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log"),
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=open(tmp / "nginx.log", "w"))
            procs.append(nginx)
            wait_port(nport, nginx, "nginx")

            # labctrl, single mode, its own worker with the same fake
            (tmp / "tokens").write_text(f"bench {USER_TOKEN}\n")
            (tmp / "tokens").chmod(0o600)
            env_file = tmp / "worker.env"
            env_file.write_text("".join(f"{k}={v}\n" for k, v in {"PATH": path, **fake_env}.items()))
            env_file.chmod(0o600)
            lport = free_port()
            lab = subprocess.Popen([a.labctrl], env={
                "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp), "LAB_HOST": "127.0.0.1",
                "LAB_PORT": str(lport), "LAB_MODE": "single", "LAB_WORKSPACE_ROOT": str(tmp / "ws"),
                "LAB_TOKENS_FILE": str(tmp / "tokens"), "LAB_WORKER_BINARY": a.worker, "LAB_WORKER_ENV_FILE": str(env_file),
                "LAB_LOG_LEVEL": "warning", "LAB_IDLE_TIMEOUT_SECS": "3600",
                # RelayBench's WebSocket client sends `Origin: ws://127.0.0.1` (no port).
                "LAB_ALLOWED_ORIGINS": "ws://127.0.0.1"}, cwd=tmp, stdin=subprocess.DEVNULL,
                stdout=open(tmp / "labctrl.log", "w"), stderr=subprocess.STDOUT)
            procs.append(lab)
            wait_port(lport, lab, "labctrl")

            results = {
                "direct": bench(a, f"ws://127.0.0.1:{wport}/", str(work), worker.pid, f"Authorization: Bearer {TOKEN}"),
                "nginx": bench(a, f"ws://127.0.0.1:{nport}/", str(work), worker.pid, f"Authorization: Bearer {TOKEN}"),
                "labctrl": bench(a, f"ws://127.0.0.1:{lport}/ws", ".", lab.pid, f"Authorization: Bearer {USER_TOKEN}"),
            }
        except BaseException:
            for log in ("worker.log", "nginx-error.log", "labctrl.log"):
                if (tmp / log).exists():
                    print(f"--- {log} (last lines)\n" + "\n".join((tmp / log).read_text(errors="replace").splitlines()[-15:]),
                          file=sys.stderr)
            raise
        finally:
            for p in reversed(procs):
                stop(p)

    print(f"stream: {a.lines} lines of ~{a.line_bytes} B per turn, median of {a.runs} turns; "
          f"/cost round trips: {a.latency}")
    print(f"{'path':10}{'events/s':>12}{'rtt p50 ms':>12}{'rtt p99 ms':>12}{'added p50':>11}{'added p99':>11}")
    base = results["direct"]
    for name, r in results.items():
        ap50 = r["cost_rtt_ms_p50"] - base["cost_rtt_ms_p50"]
        ap99 = r["cost_rtt_ms_p99"] - base["cost_rtt_ms_p99"]
        print(f"{name:10}{r['events_per_sec_median']:>12,.0f}{r['cost_rtt_ms_p50']:>12.3f}{r['cost_rtt_ms_p99']:>12.3f}"
              f"{ap50:>+11.3f}{ap99:>+11.3f}")
    l, n = results["labctrl"], results["nginx"]
    print(f"labctrl/nginx events/s: {l['events_per_sec_median'] / n['events_per_sec_median']:.2f}  "
          f"(target >= 1.00); added p99: labctrl {l['cost_rtt_ms_p99'] - base['cost_rtt_ms_p99']:+.3f} ms, "
          f"nginx {n['cost_rtt_ms_p99'] - base['cost_rtt_ms_p99']:+.3f} ms")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
