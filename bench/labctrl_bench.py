#!/usr/bin/env python3
"""labctrl benchmark (issue 4, item 4). Prints, in one run:

  1. cold spawn: connect → first worker event (`session_start`) for a new user in multi mode, vs `docker run`
     of the same image followed by the same connect + handshake (median of N);
  2. warm connect p50/p99: WebSocket open + handshake → `session_start` through labctrl (single mode, worker
     already running), next to the same against a standalone worker (same binary and fake CLI, its own
     token: labctrl never shows its workers' tokens);
  3. proxy throughput (pipelined `/cost` messages, 1 KiB and 64 KiB frames) and added p50/p99 latency at
     1 000 msg/s, vs connecting to the worker directly;
  4. RSS of the controller with 1 000 idle proxied connections.

Targets (from the issue): cold ≤ docker run + 300 ms, warm p50 ≤ 10 ms, throughput ≥ 80 % of direct,
added p99 ≤ 1 ms at 1 k msg/s, ≤ 100 MB for 1 000 connections.

The `/cost` slash command is answered by the relay itself (a `response` and an `input_ack`), so the round trip
measures the transport and the proxy, not a model. Everything stays on loopback; run it in a private namespace:

  unshare -n sh -c 'ip link set lo up; "$LAB_PYTHON" bench/labctrl_bench.py'            # full run
  unshare -n sh -c 'ip link set lo up; "$LAB_PYTHON" bench/labctrl_bench.py --quick --no-docker'

Binaries: LABCTRL_BIN / RELAY_WORKER_BIN (default: release builds if present, else debug).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "integration"))
sys.path.insert(0, str(REPO / "integration" / "labctrl"))

import websockets  # noqa: E402

import labsupport as ls  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from benchsupport import free_port, wait_port  # noqa: E402


def pick(env: str, name: str) -> str:
    if os.environ.get(env):
        p = Path(os.environ[env])
        return str(p if p.is_absolute() else REPO / p)
    rel, dbg = REPO / ".build/release" / name, REPO / ".build/debug" / name
    if rel.exists() and (not dbg.exists() or rel.stat().st_mtime >= dbg.stat().st_mtime):
        return str(rel)
    return str(dbg)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def ms(x: float) -> str:
    return f"{x * 1000:.2f} ms"


# ---- sessions ------------------------------------------------------------------------------------


# Headers per URL: the standalone worker of the "direct" path wants its token.
URL_HEADERS: dict[str, dict[str, str]] = {}


def standalone_worker(args, work: Path, bin_dir: Path) -> tuple[subprocess.Popen, str]:
    """The "direct" baseline: the same relay-worker binary and fake `claude`, started on its own with a
    token (labctrl's workers only take labctrl's own, which it never shows)."""
    token = "bench-direct-0123456789abcdef0123456789abcdef"
    (work / "direct-token").write_text(token + "\n")
    (work / "direct-token").chmod(0o600)
    (work / "direct").mkdir(exist_ok=True)
    port = free_port()
    proc = subprocess.Popen([args.worker, "serve", "--host", "127.0.0.1", "--port", str(port), "--token-file", str(work / "direct-token")],
                            env={"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"},
                            cwd=work / "direct", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, "standalone relay-worker")
    url = f"ws://127.0.0.1:{port}/"
    URL_HEADERS[url] = {"Authorization": f"Bearer {token}"}
    return proc, url


async def open_session(url: str, hs: dict | None = None, timeout: float = 60) -> tuple[websockets.ClientConnection, float]:
    """Open + handshake until `session_start`; returns the socket and the elapsed seconds."""
    t0 = time.perf_counter()
    ws = await websockets.connect(url, max_size=None, ping_interval=None, compression=None, proxy=None, open_timeout=timeout,
                                  additional_headers=URL_HEADERS.get(url))
    await ws.send(json.dumps(hs or {"tool": "claude"}))
    while True:
        ev = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if ev.get("type") == "session_start":
            return ws, time.perf_counter() - t0
        if ev.get("type") == "error":
            raise RuntimeError(f"session refused: {ev}")


async def wait_ack(ws) -> None:
    while True:
        ev = json.loads(await ws.recv())
        if ev.get("type") == "input_ack":
            return


async def paced_latency(url: str, rate: int, seconds: float) -> list[float]:
    """Send `/cost` at `rate` msg/s; RTT = send → its `input_ack`."""
    ws, _ = await open_session(url)
    sent: asyncio.Queue[float] = asyncio.Queue()
    rtts: list[float] = []
    n = int(rate * seconds)

    async def reader() -> None:
        for _ in range(n):
            await wait_ack(ws)
            rtts.append(time.perf_counter() - await sent.get())

    task = asyncio.create_task(reader())
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(n):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent.put_nowait(time.perf_counter())
        await ws.send("/cost")
    await asyncio.wait_for(task, 60)
    await ws.close()
    return rtts[int(len(rtts) * 0.1):]  # drop warm-up


async def throughput(url: str, size: int, seconds: float, window: int = 32) -> tuple[float, float]:
    """Pipelined `/cost` messages padded to `size` bytes; returns (messages/s, MiB/s client → worker)."""
    ws, _ = await open_session(url)
    frame = json.dumps({"text": "/cost", "pad": "x" * max(0, size - 30)})
    done = 0
    inflight = asyncio.Semaphore(window)
    stop_at = time.perf_counter() + seconds

    async def reader() -> None:
        nonlocal done
        while True:
            await wait_ack(ws)
            done += 1
            inflight.release()

    task = asyncio.create_task(reader())
    t0 = time.perf_counter()
    sent = 0
    while time.perf_counter() < stop_at:
        await inflight.acquire()
        await ws.send(frame)
        sent += 1
    while done < sent:
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - t0
    task.cancel()
    await ws.close()
    return done / elapsed, done * len(frame) / elapsed / (1 << 20)


# ---- measurements ----------------------------------------------------------------------------------


async def single_mode_benchmarks(args, work: Path, results: dict) -> None:
    tokens = work / "tokens"
    users = [f"u{i}" for i in range(8)]
    tokens.write_text("".join(f"{u} token-{u}-0123456789abcdef\n" for u in users))
    # The worker checks that `claude` exists at session start; `/cost` never runs it.
    bin_dir = ls.harness.make_bin_dir(work / "bin", claude="fake")
    env_file = ls.write_env_file(work / "worker.env", {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"})
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work), "LAB_PORT": "0",
        "LAB_MODE": "single", "LAB_WORKSPACE_ROOT": str(work / "ws"), "LAB_TOKENS_FILE": str(tokens),
        "LAB_ADMIN_TOKEN": ls.ADMIN_TOKEN, "LAB_WORKER_BINARY": args.worker, "LAB_LOG_LEVEL": "warning",
        "LAB_WORKER_ENV_FILE": str(env_file),
        "LAB_IDLE_TIMEOUT_SECS": "3600", "LAB_SINGLE_SHARED_ACCOUNT": "true", "LAB_MAX_CONNECTIONS_PER_USER": "0", "LAB_MAX_CONNECTIONS": "0",
    }
    lab = ls.LabCtrl(env=env, workdir=work / "single")
    os.environ["LABCTRL_BIN"] = args.labctrl
    lab.start()
    direct_proc: subprocess.Popen | None = None
    try:
        def url(u: str) -> str:
            return lab.ws_url(f"token-{u}-0123456789abcdef")

        status, info = lab.http("POST", "/v1/workers/u0", ls.ADMIN_TOKEN)
        assert status == 200, info
        direct_proc, direct = standalone_worker(args, work, bin_dir)

        # 2. warm connect
        n = 50 if args.quick else 300
        for target, key in ((url("u0"), "proxy"), (direct, "direct")):
            times = []
            for _ in range(n):
                ws, t = await open_session(target)
                times.append(t)
                await ws.close()
            times = times[5:]
            results[f"warm_connect_{key}"] = {"p50": pct(times, 50), "p99": pct(times, 99)}

        # 3a. latency at 1 k msg/s
        secs = 2.0 if args.quick else 5.0
        lat = {}
        for target, key in ((direct, "direct"), (url("u0"), "proxy")):
            lat[key] = await paced_latency(target, 1000, secs)
        results["latency_1k"] = {
            k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in lat.items()
        }
        results["latency_1k"]["added_p50"] = pct(lat["proxy"], 50) - pct(lat["direct"], 50)
        results["latency_1k"]["added_p99"] = pct(lat["proxy"], 99) - pct(lat["direct"], 99)

        # 3b. throughput
        for size in (1024, 65536):
            secs = 2.0 if args.quick else 4.0
            d = await throughput(direct, size, secs)
            p = await throughput(url("u0"), size, secs)
            results[f"throughput_{size}"] = {"direct_msgs": d[0], "direct_mib": d[1], "proxy_msgs": p[0], "proxy_mib": p[1],
                                             "ratio": p[0] / d[0] if d[0] else float("nan")}

        # 4. RSS with 1 000 idle proxied connections (4 users x 250)
        pid = lab.proc.pid
        def rss() -> int:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
            return 0
        before = rss()
        total = 200 if args.quick else 1000
        per_user = total // 4
        socks = []
        sem = asyncio.Semaphore(50)
        async def one(u: str) -> None:
            async with sem:
                ws, _ = await open_session(url(u), timeout=120)
                socks.append(ws)
        for u in users[:4]:
            lab.http("POST", f"/v1/workers/{u}", ls.ADMIN_TOKEN)
        await asyncio.gather(*(one(users[i % 4]) for i in range(per_user * 4)))
        await asyncio.sleep(2)  # let the controller settle (allocations after the last handshake)
        after = rss()
        workers = lab.workers()
        results["rss"] = {"connections": len(socks), "before": before, "after": after,
                          "controller_connections": sum(w["connections"] for w in workers)}
        await asyncio.gather(*(s.close() for s in socks))
    finally:
        if direct_proc is not None:
            direct_proc.terminate()
            direct_proc.wait(15)
        lab.stop()
        ls.kill_leftover_workers(str(work / "ws"))


async def cold_benchmarks(args, work: Path, results: dict) -> None:
    state = work / "dockerd"
    r = subprocess.run([str(REPO / "scripts/dockerd.sh"), "start", str(state)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        results["cold"] = {"error": f"dockerd: {r.stderr[-500:]}"}
        return
    host = [l.split("=", 1)[1] for l in r.stdout.splitlines() if l.startswith("export DOCKER_HOST=")][0]
    denv = dict(os.environ, DOCKER_HOST=host, RELAY_WORKER_BIN=args.worker)
    lab = None
    try:
        for script in ("base-image.sh import", "worker-image.sh"):
            cmd = [str(REPO / "scripts" / script.split()[0])] + script.split()[1:]
            b = subprocess.run(cmd, env=denv, capture_output=True, text=True, timeout=900)
            if b.returncode != 0:
                results["cold"] = {"error": f"{script}: {b.stderr[-500:]}"}
                return
        docker = shutil.which("docker") or "docker"
        tokens = work / "tokens-cold"
        tokens.write_text("".join(f"cold{i} token-cold{i}-0123456789abcdef\n" for i in range(50)))
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work), "LAB_PORT": "0",
            "LAB_MODE": "multi", "LAB_DOCKER_HOST": host, "LAB_IMAGE": "lab-worker:test", "LAB_NETWORK": "host",
            "LAB_WORKSPACE_ROOT": str(work / "ws-cold"), "LAB_TOKENS_FILE": str(tokens), "LAB_ADMIN_TOKEN": ls.ADMIN_TOKEN,
            "LAB_LOG_LEVEL": "warning", "LAB_WORKER_STOP_GRACE_SECS": "1",
        }
        lab = ls.LabCtrl(env=env, workdir=work / "multi")
        lab.start()
        n = 3 if args.quick else 7
        ours, baseline = [], []
        for i in range(n):
            ws, t = await open_session(lab.ws_url(f"token-cold{i}-0123456789abcdef"), timeout=120)
            ours.append(t)
            await ws.close()
            lab.http("DELETE", f"/v1/workers/cold{i}", ls.ADMIN_TOKEN)
        for i in range(n):
            port = free_port()
            wsdir = work / f"ws-base-{i}"
            wsdir.mkdir()
            os.chown(wsdir, 1000, 1000)
            t0 = time.perf_counter()
            subprocess.run([docker, "run", "-d", "--name", f"bench-base-{i}", "--network", "host", "-v", f"{wsdir}:/home/labuser",
                            "lab-worker:test", "serve", "--host", "127.0.0.1", "--port", str(port), "--workspace-root", "/home/labuser"],
                           env=denv, check=True, capture_output=True, timeout=120)
            while True:
                try:
                    ws, _ = await open_session(f"ws://127.0.0.1:{port}/", timeout=30)
                    break
                except (OSError, websockets.exceptions.InvalidHandshake):
                    await asyncio.sleep(0.005)
            baseline.append(time.perf_counter() - t0)
            await ws.close()
            subprocess.run([docker, "rm", "-f", f"bench-base-{i}"], env=denv, capture_output=True, timeout=120)
        results["cold"] = {"labctrl": statistics.median(ours), "docker_run": statistics.median(baseline),
                           "labctrl_all": ours, "docker_run_all": baseline}
    finally:
        if lab:
            lab.stop()
        subprocess.run([shutil.which("docker") or "docker", "rm", "-f", *[f"bench-base-{i}" for i in range(10)]],
                       env=denv, capture_output=True, timeout=120)
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=lab.managed-by=labctrl"], env=denv, capture_output=True,
                             text=True, timeout=60).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], env=denv, capture_output=True, timeout=120)
        subprocess.run([str(REPO / "scripts/dockerd.sh"), "stop", str(state)], capture_output=True, timeout=120)


def report(results: dict, args) -> None:
    print(f"\nlabctrl benchmark  (labctrl: {args.labctrl}, relay-worker: {args.worker})")
    rows = []
    if "cold" in results:
        c = results["cold"]
        if "error" in c:
            rows.append(("cold spawn → session_start", "error", c["error"][:80], ""))
        else:
            ok = c["labctrl"] <= c["docker_run"] + 0.3
            rows.append(("cold spawn → session_start (median)", ms(c["labctrl"]), f"docker run: {ms(c['docker_run'])}",
                         f"{'PASS' if ok else 'FAIL'} (≤ docker run + 300 ms)"))
    if "warm_connect_proxy" in results:
        w, d = results["warm_connect_proxy"], results["warm_connect_direct"]
        rows.append(("warm connect p50 / p99", f"{ms(w['p50'])} / {ms(w['p99'])}", f"direct: {ms(d['p50'])} / {ms(d['p99'])}",
                     f"{'PASS' if w['p50'] <= 0.010 else 'FAIL'} (p50 ≤ 10 ms)"))
    for size in (1024, 65536):
        k = f"throughput_{size}"
        if k in results:
            t = results[k]
            rows.append((f"throughput {size // 1024} KiB frames", f"{t['proxy_msgs']:.0f} msg/s ({t['proxy_mib']:.1f} MiB/s)",
                         f"direct: {t['direct_msgs']:.0f} msg/s ({t['direct_mib']:.1f} MiB/s)",
                         f"{'PASS' if t['ratio'] >= 0.8 else 'FAIL'} ({t['ratio'] * 100:.0f} % of direct, ≥ 80 %)"))
    if "latency_1k" in results:
        l = results["latency_1k"]
        rows.append(("added latency @1k msg/s p50 / p99", f"{ms(l['added_p50'])} / {ms(l['added_p99'])}",
                     f"direct {ms(l['direct']['p50'])}/{ms(l['direct']['p99'])}, proxy {ms(l['proxy']['p50'])}/{ms(l['proxy']['p99'])}",
                     f"{'PASS' if l['added_p99'] <= 0.001 else 'FAIL'} (added p99 ≤ 1 ms)"))
    if "rss" in results:
        r = results["rss"]
        rows.append((f"controller RSS, {r['connections']} idle connections", f"{r['after'] / 2**20:.1f} MiB",
                     f"before: {r['before'] / 2**20:.1f} MiB (+{(r['after'] - r['before']) / 2**20:.1f})",
                     f"{'PASS' if r['after'] <= 100 * 2**20 else 'FAIL'} (≤ 100 MB)"))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    for r in rows:
        print(f"  {r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]:<{w2}}  {r[3]}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer samples (about 30 s)")
    ap.add_argument("--no-docker", action="store_true", help="skip the cold-spawn comparison (needs dockerd)")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    args.labctrl = pick("LABCTRL_BIN", "labctrl")
    args.worker = pick("RELAY_WORKER_BIN", "relay-worker")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="labctrl-bench-") as tmp:
        work = Path(tmp)
        await single_mode_benchmarks(args, work, results)
        if not args.no_docker:
            await cold_benchmarks(args, work, results)
    report(results, args)


if __name__ == "__main__":
    asyncio.run(main())
