#!/usr/bin/env python3
"""Soak: N simulated users work through labctrl for a set time; nothing may grow, fail or be left behind.

Each user (a thread) connects, runs turns in which the real `claude` asks to write a file (the user allows it;
the file must then hold what was asked), thinks, disconnects, and either comes back soon or stays away past
the idle timeout so its worker is reaped and a new one starts. Against the fake model API on loopback.

Every few seconds it samples the controller's RSS, descriptors and threads, the workers' (every relay-worker
process: RSS per process, descriptors, threads), the agent processes and the worker containers. It fails on:
- growth between the first and the last third of the samples after a warm-up (the first quarter) beyond 5 %
  plus a small absolute slack (connections come and go, so descriptors are counted net of 2 per connection);
- any `error` event (the script provokes none), a turn that does not complete, a file that is not there;
- anything left behind once every user has left and the reaper has run: a worker, a container, an agent
  process, a controller that does not exit 0 on SIGTERM.

  unshare -n sh -c 'ip link set lo up; "$LAB_PYTHON" bench/soak.py'                          # 50 users, 30 min
  unshare -n sh -c 'ip link set lo up; "$LAB_PYTHON" bench/soak.py --users 12 --minutes 3'    # the test command's
  ... --mode single                  (relay-worker subprocesses instead of containers)
  ... --docker-host unix:///…sock    (an engine that is already running; else a private one is started)

Binaries: LABCTRL_BIN / RELAY_WORKER_BIN (default .build/debug). Prints the figures and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "integration"))
sys.path.insert(0, str(REPO / "integration" / "labctrl"))

import harness  # noqa: E402
import labsupport as ls  # noqa: E402
from fakes.fake_anthropic import FakeAnthropic, Text, ToolUse  # noqa: E402

IDLE_TIMEOUT = 15  # LAB_IDLE_TIMEOUT_SECS: short, so reaps happen often
TURN_TIMEOUT = 240  # bound of one turn's wait on a loaded 2-core machine


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    connects: int = 0
    turns: int = 0
    away: int = 0  # times a user stayed away until its worker was reaped
    failures: list[str] = field(default_factory=list)
    files: list[tuple[Path, str]] = field(default_factory=list)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)


def proc_status(pid: int) -> Optional[dict[str, int]]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {"rss_kib": int(fields.get("VmRSS", "0 kB").split()[0]), "threads": int(fields["Threads"]), "fds": fds}


def processes(pred) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            comm = (d / "comm").read_text().strip()
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            cgroup = (d / "cgroup").read_text()
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if pred(comm, cmd, cgroup, cwd):
            found.append(int(d.name))
    return found


def is_agent(comm: str, cmd: list[bytes]) -> bool:
    return any(c.endswith(b"/claude") or c == b"claude" for c in cmd[:2])


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.multi = args.mode == "multi"
        self.stats = Stats()
        self.samples: list[dict[str, float]] = []
        self.rng = random.Random(args.seed)
        self.stop_sampling = threading.Event()
        self.dockerd: Optional[ls.Dockerd] = None
        self.own_dockerd: Optional[Path] = None
        self.container_ids: set[str] = set()

    # ---- what is ours (other labs may run on this machine: the pid namespace is shared) ---------

    def ours(self, cgroup: str, cmd: list[bytes], cwd: str) -> bool:
        if self.multi:
            return any(cid in cgroup for cid in self.container_ids)
        root = str(self.work / "ws")
        return cwd.startswith(root) or any(root.encode() in c for c in cmd)

    def worker_pids(self) -> list[int]:
        return processes(lambda comm, cmd, cg, cwd: comm == "relay-worker" and self.ours(cg, cmd, cwd))

    def agent_pids(self) -> list[int]:
        return processes(lambda comm, cmd, cg, cwd: is_agent(comm, cmd) and self.ours(cg, cmd, cwd))

    def note_containers(self) -> int:
        """Records the ids of our containers (their processes are found by cgroup); returns how many exist."""
        if not (self.multi and self.dockerd):
            return 0
        out = self.dockerd.docker("ps", "-aq", "--no-trunc", "--filter", "label=lab.managed-by=labctrl").stdout.split()
        self.container_ids.update(out)
        return len(out)

    # ---- set-up ------------------------------------------------------------------------------

    def engine(self) -> ls.Dockerd:
        env = dict(os.environ)
        if self.args.docker_host:
            host = self.args.docker_host
        else:
            state = self.work / "dockerd"
            r = subprocess.run([str(REPO / "scripts/dockerd.sh"), "start", str(state)], capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise SystemExit(f"soak: dockerd did not start: {r.stderr[-800:]}")
            self.own_dockerd = state
            host = [l.split("=", 1)[1] for l in r.stdout.splitlines() if l.startswith("export DOCKER_HOST=")][0]
        env["DOCKER_HOST"] = host
        for script in (["scripts/base-image.sh", "import"], ["scripts/worker-image.sh"]):
            r = subprocess.run(["bash", str(REPO / script[0]), *script[1:]], env=env, capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                raise SystemExit(f"soak: {' '.join(script)} failed: {r.stderr[-800:]}")
        return ls.Dockerd(state=self.own_dockerd or self.work, host=host)

    def start_lab(self, fake: FakeAnthropic) -> ls.LabCtrl:
        tokens = self.work / "tokens"
        tokens.write_text("")
        extra = {"LAB_IDLE_TIMEOUT_SECS": str(IDLE_TIMEOUT), "LAB_IDLE_WARNING_SECS": "5", "LAB_LOG_LEVEL": "info",
                 "LAB_WORKSPACE_ROOT": str(self.work / "ws"), "LAB_MAX_WORKERS": "0"}
        if self.multi:
            self.dockerd = self.engine()
            self.dockerd.remove_managed()
            env = ls.multi_env(self.work, tokens, fake, self.dockerd, LAB_CONTAINER_MEMORY="1g", **extra)
        else:
            env = ls.single_env(self.work, tokens, fake, **extra)
        self.factory = ls.LabFactory(self.work)
        return self.factory.start(env, name="soak")

    # ---- one user ----------------------------------------------------------------------------

    def home(self, user: str) -> tuple[str, Path]:
        host = self.work / "ws" / user
        return ("/home/labuser" if self.multi else str(host)), host

    def turn(self, c: harness.WSClient, fake: FakeAnthropic, user: str, n: int) -> None:
        key = f"soak-{user}-{n}-{self.rng.getrandbits(32):08x}"
        inside, host = self.home(user)
        fake.script(key, [ToolUse("Write", {"file_path": f"{inside}/{key}.txt", "content": key}), Text(f"done {key}")])
        c.send_text(key)
        req = c.wait_type("permission_request", timeout=TURN_TIMEOUT)
        c.send_json({"type": "permission_response", "request_id": req["request_id"], "allow": True, "behavior": "allow"})
        resp = c.wait_type("response", timeout=TURN_TIMEOUT)
        if f"done {key}" not in resp.get("text", ""):
            raise AssertionError(f"turn {key} answered {resp.get('text')!r}")
        with self.stats.lock:
            self.stats.files.append((host / f"{key}.txt", key))
        self.stats.add(turns=1)

    def user(self, lab: ls.LabCtrl, fake: FakeAnthropic, i: int, deadline: float, spread: float) -> None:
        name = f"soak{i:03d}"
        rng = random.Random(self.args.seed * 1000 + i)
        token = ls.jwt_hs256(ls.claims(name, ttl=self.args.minutes * 60 + 3600))
        time.sleep(spread * i / max(1, self.args.users))  # arrivals spread over the warm-up
        n = 0
        while time.monotonic() < deadline:
            c: Optional[harness.WSClient] = None
            try:
                c = harness.WSClient(lab.ws_url(token), open_timeout=120)
                self.stats.add(connects=1)
                c.send_json({"tool": "claude"})
                c.wait_type("session_start", timeout=TURN_TIMEOUT)
                for _ in range(rng.randint(1, 3)):
                    if time.monotonic() >= deadline:
                        break
                    n += 1
                    self.turn(c, fake, name, n)
                    time.sleep(rng.uniform(1, 6))  # thinking
                if rng.random() < 0.8:
                    # Done with it: end the session (its agent stops). Otherwise the socket just goes and
                    # the session waits, detached, until the worker is reaped.
                    c.send_json({"type": "end_session"})
                    c.wait_type("session_end", timeout=30)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                self.stats.fail(f"{name}: {type(e).__name__}: {e}"[:300])
            finally:
                if c is not None:
                    for e in c.events:
                        if e.get("type") == "error":
                            self.stats.fail(f"{name}: unprovoked error event: {e.get('text', '')[:200]}")
                    c.close()
            if time.monotonic() >= deadline:
                break
            if rng.random() < 0.25:
                # Away past the idle timeout: the worker is reaped, the next connect starts a new one.
                try:
                    ls.wait_until(lambda: lab.worker(name) is None, IDLE_TIMEOUT + 60, f"the worker of {name} to be reaped")
                    self.stats.add(away=1)
                except Exception as e:  # noqa: BLE001
                    self.stats.fail(f"{name}: {e}"[:300])
            else:
                time.sleep(rng.uniform(0.2, 3))

    # ---- sampling ----------------------------------------------------------------------------

    def sample(self, lab: ls.LabCtrl, t0: float) -> None:
        while not self.stop_sampling.wait(self.args.sample_secs):
            ctl = proc_status(lab.proc.pid) if lab.proc else None
            if ctl is None:
                self.stats.fail("the controller is gone")
                return
            try:
                ws = lab.workers()
            except Exception:  # noqa: BLE001 - a sample is skipped, not the run
                continue
            conns = sum(w["connections"] for w in ws)
            containers = self.note_containers()
            wp = [s for s in (proc_status(p) for p in self.worker_pids()) if s]
            s = {"t": time.monotonic() - t0, "ctl_rss_kib": ctl["rss_kib"], "ctl_threads": ctl["threads"],
                 "ctl_fds_net": ctl["fds"] - 2 * conns, "connections": conns, "workers": len(wp),
                 "worker_rss_kib_each": (sum(x["rss_kib"] for x in wp) / len(wp)) if wp else float("nan"),
                 "worker_threads_each": (sum(x["threads"] for x in wp) / len(wp)) if wp else float("nan"),
                 "worker_fds": sum(x["fds"] for x in wp), "agents": len(self.agent_pids()), "containers": containers}
            self.samples.append(s)

    def growth(self) -> list[tuple[str, float, float, bool]]:
        """(metric, first third mean, last third mean, ok) after the warm-up quarter."""
        rest = self.samples[len(self.samples) // 4:]
        third = len(rest) // 3
        if third < 2:
            return []
        slack = {"ctl_rss_kib": 4096, "ctl_threads": 2, "ctl_fds_net": 16, "worker_rss_kib_each": 3072, "worker_threads_each": 2}
        out = []
        for m, extra in slack.items():
            def mean(xs: list[dict[str, float]]) -> float:
                vals = [x[m] for x in xs if x[m] == x[m]]  # drop NaN (no worker at that moment)
                return sum(vals) / len(vals) if vals else float("nan")
            a, b = mean(rest[:third]), mean(rest[-third:])
            ok = not (a == a and b == b) or b <= a * 1.05 + extra
            out.append((m, a, b, ok))
        return out

    # ---- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        with FakeAnthropic() as fake:
            lab = self.start_lab(fake)
            try:
                return self.run_with(lab, fake)
            finally:
                self.factory.stop_all()
                if self.dockerd:
                    self.dockerd.remove_managed()
                if self.own_dockerd:
                    subprocess.run([str(REPO / "scripts/dockerd.sh"), "stop", str(self.own_dockerd)], capture_output=True, timeout=120)

    def run_with(self, lab: ls.LabCtrl, fake: FakeAnthropic) -> int:
        t0 = time.monotonic()
        duration = self.args.minutes * 60
        deadline = t0 + duration
        sampler = threading.Thread(target=self.sample, args=(lab, t0), daemon=True)
        sampler.start()
        users = [threading.Thread(target=self.user, args=(lab, fake, i, deadline, duration / 4), daemon=True)
                 for i in range(self.args.users)]
        for u in users:
            u.start()
        for u in users:
            u.join(timeout=max(1.0, deadline - time.monotonic()) + 2 * TURN_TIMEOUT + IDLE_TIMEOUT + 120)
            if u.is_alive():
                self.stats.fail(f"{u.name} did not finish")
        self.stop_sampling.set()
        sampler.join(timeout=30)
        elapsed = time.monotonic() - t0

        # Everyone has left: the reaper removes every worker; nothing may stay behind.
        left: list[str] = []
        try:
            ls.wait_until(lambda: not lab.workers(), IDLE_TIMEOUT + 90, "every worker to be reaped")
        except Exception:  # noqa: BLE001
            left.append(f"workers still known: {[w['user'] for w in lab.workers()]}")
        self.note_containers()
        try:
            ls.wait_until(lambda: not self.worker_pids() and not self.agent_pids(), 60, "worker and agent processes to end")
        except Exception:  # noqa: BLE001
            left.append(f"processes left: {len(self.worker_pids())} relay-worker, {len(self.agent_pids())} claude")
        if self.multi and self.dockerd and self.dockerd.containers():
            left.append(f"containers left: {[c['Names'] for c in self.dockerd.containers()]}")
        # Reported, not (yet) a failure: about 1 % of sessions keep their relay (an open lead);
        # the memory growth check above is what fails on a real leak.
        relays = [float(l.split()[1]) for l in lab.metrics().splitlines() if l.startswith("lab_proxy_relays ")]
        print(f"soak: proxy relays still in memory after everyone left: {relays[0] if relays else '?'}", flush=True)
        missing = [str(p) for p, text in self.stats.files if not p.exists() or p.read_text() != text]
        reaps = sum(float(l.rsplit(" ", 1)[1]) for l in lab.metrics().splitlines() if l.startswith('lab_worker_stops_total{reason="idle"}'))
        rc = lab.stop(signal.SIGTERM)
        if rc != 0:
            left.append(f"labctrl exited {rc} on SIGTERM")

        growth = self.growth()
        print(f"soak: {self.args.users} users, {self.args.mode} mode, {elapsed / 60:.1f} min, {len(self.samples)} samples")
        print(f"  connects {self.stats.connects}, turns {self.stats.turns} (each wrote a file), reaped while away "
              f"{self.stats.away}, idle reaps {int(reaps)}")
        peak = {k: max((s.get(k, 0) for s in self.samples), default=0) for k in ("workers", "agents", "connections", "containers")}
        print(f"  peak: {peak}")
        print(f"  {'metric':<22}{'first third':>14}{'last third':>14}{'ratio':>8}")
        for m, a, b, ok in growth:
            ratio = b / a if a else float("nan")
            print(f"  {m:<22}{a:>14.1f}{b:>14.1f}{ratio:>8.3f}{'' if ok else '  GROWTH'}")
        failures = list(self.stats.failures)
        failures += [f"{m} grew from {a:.1f} to {b:.1f}" for m, a, b, ok in growth if not ok]
        failures += left + [f"file missing or changed: {p}" for p in missing[:10]]
        if not growth:
            failures.append("too few samples to judge growth (run longer)")
        if self.stats.turns == 0:
            failures.append("no turn completed")
        print(json.dumps({"soak": {"users": self.args.users, "mode": self.args.mode, "minutes": round(elapsed / 60, 2),
                                   "connects": self.stats.connects, "turns": self.stats.turns, "reaped_away": self.stats.away, "idle_reaps": int(reaps),
                                   "growth": {m: [round(a, 1), round(b, 1)] for m, a, b, _ in growth},
                                   "failures": failures[:20]}}))
        for f in failures[:20]:
            print(f"soak: FAIL {f}")
        print("soak: ok" if not failures else f"soak: {len(failures)} failure(s)")
        return 0 if not failures else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--mode", choices=["multi", "single"], default="multi")
    ap.add_argument("--docker-host", help="use this running engine (else a private dockerd is started)")
    ap.add_argument("--sample-secs", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    up = [name for _, name in socket.if_nameindex() if name != "lo"]
    if up and not os.environ.get("LAB_ALLOW_NETWORK"):
        # A cheap guard: a private namespace made by `unshare -n` has only `lo`.
        raise SystemExit(f"soak: run it in a private network namespace (unshare -n); interfaces here: {up}")
    with tempfile.TemporaryDirectory(prefix="lab-soak-") as tmp:
        sys.exit(Soak(args, Path(tmp)).run())


if __name__ == "__main__":
    main()
