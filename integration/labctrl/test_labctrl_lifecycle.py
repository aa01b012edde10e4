"""Worker life cycle.

- 50 concurrent first connects for one user → exactly one worker (container in multi mode, process in single);
- controller restart → running containers adopted (same ids), stopped leftovers removed, no duplicates;
- settings change → an outdated worker is recreated once idle, never while a session uses it;
- idle reap after the timeout, with `lab.idle_warning` first, cancelled by a user frame (not by a keep-alive);
- no reap mid-turn or while a permission prompt is pending; a stuck turn is reaped at the hard cap;
- a container killed mid-turn → the client gets an `error` saying why, a reconnect gets a fresh worker, and
  nothing in the workspace is lost.
Timeouts are shortened through LAB_* variables; every wait is bounded and waits for an event or state.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

import harness
from fakes.fake_anthropic import Text, ToolUse

from labsupport import ADMIN_TOKEN, TOKENS, jwt_hs256, claims, multi_env, single_env, statuses, wait_until

# 50 sockets of one user: above the default per-user connection cap.
MANY = {"LAB_MAX_CONNECTIONS_PER_USER": "64"}
FAST_REAPER = {"LAB_REAPER_INTERVAL_SECS": "0.2", "LAB_IDLE_TIMEOUT_SECS": "3", "LAB_IDLE_WARNING_SECS": "1.5"}


def tag() -> str:
    return uuid.uuid4().hex[:8]


def concurrent_connects(lab, token: str, n: int) -> list[harness.WSClient]:
    clients: list = [None] * n
    errors: list = []
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            c = harness.WSClient(lab.ws_url(token), open_timeout=60)
            c.send_json({"tool": "claude", "session_id": f"c{i}"})
            c.wait_type("session_start", timeout=120)
            clients[i] = c
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors[:5]
    return clients


def count_processes(root: str) -> int:
    n = 0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"relay-worker") and any(root.encode() in c for c in cmd):
                n += 1
    return n


# ---- single-flight -------------------------------------------------------------------------------


def test_50_concurrent_first_connects_single_mode(labs, lab_dir, tokens_file, fake_api):
    root = str(lab_dir / "ws-sf")
    lab = labs.start(single_env(lab_dir, tokens_file, fake_api, LAB_WORKSPACE_ROOT=root, **MANY), name="sf-single")
    clients = concurrent_connects(lab, jwt_hs256(claims("frank")), 50)
    try:
        assert count_processes(root) == 1
        w = lab.worker("frank")
        assert w["connections"] == 50
        assert "lab_worker_spawn_seconds_count 1" in lab.metrics()
    finally:
        for c in clients:
            c.close()
        lab.stop()


def test_50_concurrent_first_connects_multi_mode(labs, lab_dir, tokens_file, fake_api, dockerd):
    lab = labs.start(multi_env(lab_dir, tokens_file, fake_api, dockerd, **MANY), name="sf-multi")
    clients = concurrent_connects(lab, jwt_hs256(claims("grace")), 50)
    try:
        cs = dockerd.containers("lab.user=grace")
        assert len(cs) == 1, cs
        assert lab.worker("grace")["connections"] == 50
        assert "lab_worker_spawn_seconds_count 1" in lab.metrics()
        # Every client got the same progress, and one session each.
        assert all(statuses(c)[-1] == "lab.ready" for c in clients)
    finally:
        for c in clients:
            c.close()
        lab.stop()
        dockerd.remove_managed()


# ---- restart, adoption, spec change --------------------------------------------------------------


def test_restart_adopts_and_spec_change_recreates_when_idle(labs, lab_dir, tokens_file, fake_api, dockerd):
    env = multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_REAPER_INTERVAL_SECS="0.3")
    lab1 = labs.start(env, name="adopt-1")
    for user in ("alice", "bob", "carol"):
        tok = TOKENS.get(user) or jwt_hs256(claims(user))
        with harness.WSClient(lab1.ws_url(tok)) as c:
            c.send_json({"tool": "claude"})
            c.wait_type("session_start", timeout=120)
    ids = {c["Names"]: c["ID"] for c in dockerd.containers()}
    assert sorted(ids) == ["lab-alice", "lab-bob", "lab-carol"]
    (lab_dir / "ws-multi" / "alice" / "keep.txt").write_text("still here")
    assert lab1.stop() == 0
    # Containers survive the controller; one of them dies while no controller runs.
    assert {c["Names"]: c["State"] for c in dockerd.containers()} == {n: "running" for n in ids}
    dockerd.docker("stop", "-t", "1", "lab-carol")

    lab2 = labs.start(env, name="adopt-2")
    ws = {w["user"]: w for w in lab2.workers()}
    assert sorted(ws) == ["alice", "bob"], ws
    assert all(w["adopted"] and not w["outdated"] for w in ws.values())
    assert ws["alice"]["id"].startswith(ids["lab-alice"]) and ws["bob"]["id"].startswith(ids["lab-bob"])
    assert "lab-carol" not in {c["Names"] for c in dockerd.containers()}, "stopped leftover not removed"
    with lab2.client("alice") as c:
        c.send_json({"tool": "claude"})
        c.wait_type("session_start", timeout=60)
        assert statuses(c) == ["lab.ready"], "adopted worker must be used, not recreated"
    assert {c["Names"]: c["ID"] for c in dockerd.containers()} == {"lab-alice": ids["lab-alice"], "lab-bob": ids["lab-bob"]}
    assert lab2.stop() == 0

    # New settings (memory limit): the adopted workers are outdated. Bob's, unused, is replaced by the
    # reaper; alice's is replaced as she connects (nobody uses it at that moment).
    env3 = dict(env, LAB_CONTAINER_MEMORY="768m")
    lab3 = labs.start(env3, name="adopt-3")
    assert all(w["outdated"] for w in lab3.workers())
    wait_until(lambda: lab3.worker("bob") is None, 15, "the idle outdated worker of bob to be removed")
    alice = lab3.client("alice")
    alice.send_json({"tool": "claude"})
    alice.wait_type("session_start", timeout=120)
    assert statuses(alice)[:2] == ["lab.creating", "lab.starting"]
    second = dockerd.inspect("lab-alice")
    assert second["Id"] != ids["lab-alice"] and second["HostConfig"]["Memory"] == 768 << 20
    assert second["HostConfig"]["ReadonlyRootfs"] is True and list(second["HostConfig"]["Tmpfs"]) == ["/tmp"]
    assert (lab_dir / "ws-multi" / "alice" / "keep.txt").read_text() == "still here"

    # The image is rebuilt while alice is connected: her worker becomes outdated but stays while in use
    # (several 0.3 s reaper passes), and is replaced once her session ends.
    rebuilt = dockerd.docker("build", "-q", "--network", "none", "-t", env["LAB_IMAGE"], "-",
                             input_text=f"FROM {env['LAB_IMAGE']}\nLABEL lab.test-rebuild={tag()}\n")
    assert rebuilt.returncode == 0, rebuilt.stderr
    wait_until(lambda: lab3.worker("alice")["outdated"], 10, "alice's worker to be marked outdated")
    # Kept while in use over many reaper passes: WorkerHubTests (injected clock) covers the timing.
    assert lab3.worker("alice")["id"] == second["Id"]
    alice.close()
    wait_until(lambda: lab3.worker("alice") is None, 15, "alice's outdated worker to go once idle")
    with lab3.client("alice") as c:
        c.send_json({"tool": "claude"})
        c.wait_type("session_start", timeout=120)
        assert statuses(c)[:2] == ["lab.creating", "lab.starting"]
    assert dockerd.inspect("lab-alice")["Id"] not in (ids["lab-alice"], second["Id"])
    assert (lab_dir / "ws-multi" / "alice" / "keep.txt").read_text() == "still here"
    assert 'lab_worker_stops_total{reason="spec_changed"} 3' in lab3.metrics()
    lab3.stop()
    dockerd.remove_managed()


# ---- reaper ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fast(labs, lab_dir, tokens_file, fake_api):
    return labs.start(single_env(lab_dir, tokens_file, fake_api, LAB_WORKSPACE_ROOT=str(lab_dir / "ws-reap"), **FAST_REAPER),
                      name="reaper")


def session(lab, user: str) -> harness.WSClient:
    c = harness.WSClient(lab.ws_url(jwt_hs256(claims(user))))
    c.send_json({"tool": "claude", "session_id": f"{user}-{tag()}"})
    c.wait_type("session_start", timeout=60)
    return c


def is_status(s: str):
    return lambda e: e.get("type") == "status" and e.get("status") == s


def test_idle_warning_cancelled_by_user_frame_then_reaped(fast, lab_dir):
    c = session(fast, "henry")
    try:
        w1 = c.wait_for(is_status("lab.idle_warning"), timeout=10, what="the first idle warning")
        assert 0 < w1["metadata"]["seconds_left"] <= 2
        # A keep-alive is not activity; a user frame is.
        c.send_json({"type": "ping"})
        c.send_text("/status")
        c.wait_for(is_status("lab.idle_warning_cancelled"), timeout=5, what="the cancellation")
        assert not [e for e in c.events if e.get("status") == "lab.stopped"]
        assert fast.worker("henry") is not None
        # Left alone again: warned, then stopped with a reason; the workspace stays.
        c.wait_for(is_status("lab.idle_warning"), timeout=10, what="the second idle warning")
        stopped = c.wait_for(is_status("lab.stopped"), timeout=10, what="the reap")
        assert stopped["metadata"]["reason"] == "idle"
        c.wait_closed(timeout=10)
        assert c.close_code == 1001 and c.close_reason == "idle timeout"
        wait_until(lambda: fast.worker("henry") is None, 10, "the reaped worker to be gone")
        assert count_processes(str(lab_dir / "ws-reap" / "henry")) == 0
        assert (lab_dir / "ws-reap" / "henry").is_dir()
    finally:
        c.close()


def test_worker_without_connections_is_reaped_after_timeout(fast):
    c = session(fast, "ivan")
    c.close()
    t0 = time.monotonic()
    wait_until(lambda: fast.worker("ivan") is None, 15, "the idle worker to be reaped")
    assert time.monotonic() - t0 >= 2.0  # not before the 3 s timeout (minus the time the session took)
    assert 'lab_worker_stops_total{reason="idle"}' in fast.metrics()


def test_no_reap_mid_turn_or_with_pending_permission(fast, fake_api, lab_dir):
    t = tag()
    release = threading.Event()
    fake_api.script(f"slow-{t}", Text(f"slow answer {t}", chunks=2, hold=release, hold_timeout=60))
    c = session(fast, "judy")
    try:
        c.send_text(f"slow-{t}")
        c.wait_type("input_ack", timeout=30)
        # The proxy sees the turn in flight; that a busy worker outlives the idle timeout is timed in
        # WorkerHubTests with an injected clock.
        wait_until(lambda: fast.worker("judy")["busy"], 10, "the turn to count as busy")
        assert not [e for e in c.events if str(e.get("status", "")).startswith("lab.idle")], c.events
        release.set()
        assert f"slow answer {t}" in c.wait_type("response", timeout=60)["text"]
        # A pending permission prompt also keeps the worker.
        fake_api.script(f"perm-{t}", [ToolUse("Bash", {"command": f"touch perm-{t}.txt", "description": "make a file"}), Text(f"made {t}")])
        c.send_text(f"perm-{t}")
        req = c.wait_type("permission_request", timeout=60)
        wait_until(lambda: fast.worker("judy")["busy"], 10, "the pending prompt to count as busy")
        assert not [e for e in c.events if str(e.get("status", "")).startswith("lab.idle")], c.events
        c.send_json({"type": "permission_response", "request_id": req["request_id"], "allow": True, "behavior": "allow"})
        c.wait_type("response", timeout=60)
        assert (lab_dir / "ws-reap" / "judy" / f"perm-{t}.txt").exists()
        m = fast.metrics()
        assert 'lab_permission_requests_total{tool="claude"}' in m and "lab_permission_wait_seconds_count" in m
        # Idle again: now the warning comes.
        c.wait_for(is_status("lab.idle_warning"), timeout=10, what="the warning after the turn")
    finally:
        release.set()
        c.close()


def test_stuck_turn_reaped_at_hard_cap(labs, lab_dir, tokens_file, fake_api):
    lab = labs.start(single_env(lab_dir, tokens_file, fake_api, LAB_WORKSPACE_ROOT=str(lab_dir / "ws-stuck"),
                                LAB_MAX_TURN_SECS="4", **FAST_REAPER), name="stuck")
    t = tag()
    release = threading.Event()
    fake_api.script(f"stuck-{t}", Text(f"never {t}", hold=release, hold_timeout=60))
    c = session(lab, "kate")
    try:
        c.send_text(f"stuck-{t}")
        c.wait_type("input_ack", timeout=30)
        t0 = time.monotonic()
        c.wait_for(is_status("lab.idle_warning"), timeout=15, what="the warning of a stuck turn")
        stopped = c.wait_for(is_status("lab.stopped"), timeout=15, what="the reap of a stuck turn")
        assert time.monotonic() - t0 >= 3.0
        assert stopped["metadata"]["reason"] == "stuck"
    finally:
        release.set()
        c.close()
        lab.stop()


# ---- a worker that dies --------------------------------------------------------------------------


def test_process_worker_killed_mid_session(fast):
    """Single mode: the controller's own child dies; the death is reported in line by its supervisor."""
    c = session(fast, "liam")
    try:
        pid = int(fast.worker("liam")["id"].removeprefix("pid:"))
        os.kill(pid, signal.SIGKILL)
        err = c.wait_type("error", timeout=20)
        assert "stopped unexpectedly" in err["text"] and "signal 9" in err["text"], err
        c.wait_closed(timeout=10)
        assert c.close_code == 1011
        wait_until(lambda: fast.worker("liam") is None, 15, "the dead worker to be forgotten")
    finally:
        c.close()
    c2 = session(fast, "liam")
    try:
        assert statuses(c2)[0] == "lab.creating"
        assert int(fast.worker("liam")["id"].removeprefix("pid:")) != pid
        assert 'lab_worker_deaths_total{oom="false"}' in fast.metrics()
    finally:
        c2.close()


def test_container_killed_mid_turn(labs, lab_dir, tokens_file, fake_api, dockerd):
    lab = labs.start(multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_WORKSPACE_ROOT=str(lab_dir / "ws-kill")), name="kill")
    t = tag()
    release = threading.Event()
    fake_api.script(f"write-{t}", [ToolUse("Write", {"file_path": f"/home/labuser/notes-{t}.txt", "content": "precious"}), Text(f"wrote {t}")])
    fake_api.script(f"hang-{t}", Text(f"hang {t}", hold=release, hold_timeout=60))
    try:
        c = lab.client("alice")
        c.send_json({"tool": "claude"})
        c.wait_type("session_start", timeout=120)
        c.send_text(f"write-{t}")
        req = c.wait_type("permission_request", timeout=60)
        c.send_json({"type": "permission_response", "request_id": req["request_id"], "allow": True, "behavior": "allow"})
        c.wait_type("response", timeout=60)
        assert (lab_dir / "ws-kill" / "alice" / f"notes-{t}.txt").read_text() == "precious"
        old = dockerd.inspect("lab-alice")["Id"]
        c.send_text(f"hang-{t}")
        c.wait_type("input_ack", timeout=30)
        dockerd.docker("kill", "lab-alice")
        err = c.wait_type("error", timeout=20)
        assert "stopped unexpectedly" in err["text"] and "killed" in err["text"], err
        c.wait_closed(timeout=10)
        assert c.close_code == 1011
        c.close()
        wait_until(lambda: lab.worker("alice") is None, 15, "the dead worker to be forgotten")
        with lab.client("alice") as c2:
            c2.send_json({"tool": "claude"})
            c2.wait_type("session_start", timeout=120)
            assert statuses(c2)[0] == "lab.creating"
        assert dockerd.inspect("lab-alice")["Id"] != old
        assert (lab_dir / "ws-kill" / "alice" / f"notes-{t}.txt").read_text() == "precious"
        assert 'lab_worker_deaths_total{oom="false"} 1' in lab.metrics()
    finally:
        release.set()
        lab.stop()
        dockerd.remove_managed()
