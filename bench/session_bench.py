#!/usr/bin/env python3
"""Issue-11 benchmark: re-attach latency of a long session (docs/protocol.md §7).

Starts relay-worker with `--detach-grace` and `--state-dir`, runs one turn of the fake `claude` in bench
mode that streams N lines (about N events), closes the socket, then re-attaches K times with
`after_seq` 0 and measures socket open → last replayed event (p50/p99), once with the session's tail in
memory and once right after a worker restart (the whole log read back from disk). The re-attaching
client is bench/RelayBench (Swift, no JSON parse per frame) when `--bench` is given, else Python
`websockets` (slower: its own cost is in the figures). Also prints bytes on disk per event.

Usage: bench/session_bench.py --worker BIN [--bench RelayBench] [--events 10000] [--attaches 30]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchsupport import free_port, stop, wait_port  # noqa: E402

FAKE = ROOT / "integration" / "fakes" / "fake_claude.py"


def start(worker: str, tmp: Path, lines: int) -> tuple[subprocess.Popen, int]:
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "claude"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    shim.chmod(0o755)
    port = free_port()
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_CLAUDE_LINES=str(lines), HOME=str(tmp))
    proc = subprocess.Popen([worker, "serve", "--host", "127.0.0.1", "--port", str(port), "--detach-grace", "600",
                             "--state-dir", str(tmp / "state")], env=env, stdout=open(tmp / "worker.log", "a"),
                            stderr=subprocess.STDOUT, cwd=tmp)
    wait_port(port, proc)
    return proc, port


def attach_once(port: int, sid: str, last: int) -> float:
    t0 = time.perf_counter()
    with connect(f"ws://127.0.0.1:{port}/", max_size=None, open_timeout=30) as ws:
        ws.send(json.dumps({"attach": sid, "after_seq": 0}))
        needle = f'"seq":{last},'.encode()
        while True:
            frame = ws.recv(timeout=60)
            data = frame.encode() if isinstance(frame, str) else frame
            if needle in data[:200]:
                return time.perf_counter() - t0


def attaches(bench: str | None, port: int, sid: str, last: int, k: int) -> list[float]:
    """Seconds per re-attach (socket open -> the event with seq `last`)."""
    if not bench:
        return [attach_once(port, sid, last) for _ in range(k)]
    out = subprocess.run([bench, "--url", f"ws://127.0.0.1:{port}/", "--folder", "/", "--pid", "0", "--attach", sid,
                          "--attach-last", str(last), "--attaches", str(k)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"RelayBench failed: {out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # RelayBench reports percentiles only: k copies keep pct() below exact.
    return [r["attach_ms_p50"] / 1000] * (k // 2) + [r["attach_ms_p99"] / 1000] * (k - k // 2)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True)
    ap.add_argument("--bench", help="bench/RelayBench binary (the re-attaching client)")
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--attaches", type=int, default=30)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        folder = tmp / "work"
        folder.mkdir()
        proc, port = start(a.worker, tmp, a.events)
        try:
            with connect(f"ws://127.0.0.1:{port}/", max_size=None, open_timeout=30) as ws:
                ws.send(json.dumps({"tool": "claude", "folder": str(folder)}))
                sid = None
                while True:
                    e = json.loads(ws.recv(timeout=60))
                    if e["type"] == "session_start":
                        sid = e["session_id"]
                        ws.send(json.dumps({"text": "go"}))
                    if e["type"] == "response":
                        last = e["seq"]
                        break
            warm = attaches(a.bench, port, sid, last, a.attaches)
        finally:
            stop(proc, grace=10)
        logs = list((tmp / "state").rglob("events.jsonl"))
        size = sum(f.stat().st_size for f in logs)
        count = sum(1 for f in logs for _ in f.open("rb"))
        # Restarted: the session is read back as ended; every replay comes from the file.
        proc, port = start(a.worker, tmp, a.events)
        try:
            cold = attaches(a.bench, port, sid, last, a.attaches)
        finally:
            stop(proc, grace=10)
    client = "RelayBench (Swift)" if a.bench else "Python websockets"
    print(f"session of {last:,} events; {a.attaches} re-attaches each by {client} (after_seq 0, socket open -> last replayed event)")
    print(f"  live worker (tail in memory + log): p50 {pct(warm, 50) * 1000:8.1f} ms   p99 {pct(warm, 99) * 1000:8.1f} ms")
    print(f"  restarted worker (log from disk):   p50 {pct(cold, 50) * 1000:8.1f} ms   p99 {pct(cold, 99) * 1000:8.1f} ms")
    print(f"  bytes on disk per event: {size / max(count, 1):,.0f} ({count:,} lines, {size:,} bytes)")
    print(json.dumps({"events": last, "warm_p50_ms": pct(warm, 50) * 1000, "warm_p99_ms": pct(warm, 99) * 1000,
                      "cold_p50_ms": pct(cold, 50) * 1000, "cold_p99_ms": pct(cold, 99) * 1000,
                      "bytes_per_event": size / max(count, 1)}))


if __name__ == "__main__":
    main()
