#!/usr/bin/env python3
"""Issue-2 benchmark: relay-worker vs the Python ai-relay 0.4.46, in one run, same fake CLI.

For each implementation: start the server on loopback with the fake `claude` (bench mode: every turn
streams N stream-json lines, then a result) first on PATH, then run bench/RelayBench (a Swift
WebSocket client, so the client is not the bottleneck) which prints events/s of a streamed turn and
RSS and private anonymous memory growth per idle session. Prints both and the ratios.

Usage: bench/relay_bench.py --worker BIN --bench BIN [--lines N] [--idle K]
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


def run_one(name: str, argv: list[str], bench: str, lines: int, idle: int, tmp: Path) -> dict:
    bindir = tmp / f"bin-{name}"
    bindir.mkdir()
    shim = bindir / "claude"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    shim.chmod(0o755)
    folder = tmp / f"work-{name}"
    folder.mkdir()
    port = free_port()
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_CLAUDE_LINES=str(lines), HOME=str(tmp))
    log = open(tmp / f"{name}.log", "w")
    proc = subprocess.Popen(argv + ["--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=folder)
    try:
        wait_port(port, proc)
        out = subprocess.run([bench, "--url", f"ws://127.0.0.1:{port}/", "--folder", str(folder), "--pid",
                              str(proc.pid), "--idle", str(idle)], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise SystemExit(f"bench client failed for {name}: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        stop(proc, grace=10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True)
    ap.add_argument("--reference", default=shutil.which("ai-relay") or "ai-relay")
    ap.add_argument("--bench", required=True)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--idle", type=int, default=200)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        worker = run_one("relay-worker", [a.worker, "serve"], a.bench, a.lines, a.idle, tmp)
        # The same worker keeping every session's events on disk (docs/protocol.md §7).
        state = tmp / "state"
        logged = run_one("relay-worker-log", [a.worker, "serve", "--state-dir", str(state)], a.bench, a.lines, 0, tmp)
        on_disk = sum(f.stat().st_size for f in state.rglob("events.jsonl"))
        lines_on_disk = sum(1 for f in state.rglob("events.jsonl") for _ in f.open("rb"))
        ref = run_one("ai-relay", [a.reference, "serve"], a.bench, a.lines, a.idle, tmp)
    print(f"streamed turn: {a.lines} fake-claude lines; idle sessions: {a.idle}")
    print(f"{'':24}{'relay-worker':>16}{'ai-relay 0.4.46':>18}{'ratio':>10}")
    w, r = worker["events_per_sec_median"], ref["events_per_sec_median"]
    print(f"{'events/s (median of 3)':24}{w:>16,.0f}{r:>18,.0f}{w / r:>9.1f}x")
    wl = logged["events_per_sec_median"]
    print(f"{'events/s, log on disk':24}{wl:>16,.0f}{r:>18,.0f}{wl / r:>9.1f}x   ({wl / w:.2f} of the worker without the log)")
    print(f"{'bytes on disk per event':24}{on_disk / max(lines_on_disk, 1):>16,.0f}   ({lines_on_disk:,} events, {on_disk:,} bytes)")
    wi, ri = max(worker["rss_per_idle_session_kib"], 0.01), ref["rss_per_idle_session_kib"]
    print(f"{'RSS per idle session KiB':24}{wi:>16,.1f}{ri:>18,.1f}{ri / wi:>9.1f}x smaller")
    wa, ra = max(worker["anon_per_idle_session_kib"], 0.01), ref["anon_per_idle_session_kib"]
    print(f"{'private anon/idle KiB':24}{wa:>16,.1f}{ra:>18,.1f}{ra / wa:>9.1f}x smaller")
    print(f"{'private anon idle KiB':24}{worker['anon_before_kib']:>16,.0f}{ref['anon_before_kib']:>18,.0f}"
          f"{ref['anon_before_kib'] / max(worker['anon_before_kib'], 1):>9.1f}x smaller")
    print(json.dumps({"relay-worker": worker, "relay-worker-log": logged, "ai-relay": ref,
                      "log_bytes_per_event": on_disk / max(lines_on_disk, 1)}))


if __name__ == "__main__":
    main()
