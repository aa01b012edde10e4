"""Operations: admin API (list, stop, pre-warm), health/readiness/metrics, JSON logs, worker cap, frame-size
cap, graceful shutdown (clients told why; subprocess workers ended; containers left for adoption), and two
controller replicas on one engine racing for the same user (the 409 name conflict is adopted).
"""
from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest

import harness

from labsupport import ADMIN_TOKEN, TOKENS, claims, jwt_hs256, multi_env, single_env, statuses, wait_until


@pytest.fixture(scope="module")
def lab(labs, lab_dir, tokens_file, fake_api):
    return labs.start(single_env(lab_dir, tokens_file, fake_api, LAB_WORKSPACE_ROOT=str(lab_dir / "ws-ops"),
                                 LAB_LOG_FORMAT="json", LAB_MAX_WORKERS="2", LAB_MAX_FRAME_BYTES="65536"), name="ops")


def test_health_ready_metrics(lab):
    assert lab.http("GET", "/healthz") == (200, "ok\n")
    assert lab.http("GET", "/readyz") == (200, "ready\n")
    m = lab.metrics()
    for name in ("lab_connections", "lab_workers", "lab_worker_spawn_seconds", "lab_frames_proxied_total", "lab_bytes_proxied_total",
                 "lab_worker_stops_total"):
        assert name in m, name


def gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_finished_sessions_free_their_relays(lab):
    """Every way a session ends (a turn then a close, a refused handshake, no handshake, a vanished client)
    frees its relay and both its sockets: lab_proxy_relays falls back with lab_connections. (A reference
    cycle between the relay and its connection once kept every finished session in memory.)"""
    token = jwt_hs256(claims("relaygauge"))
    for _ in range(3):
        with harness.WSClient(lab.ws_url(token)) as c:
            c.send_json({"tool": "claude"})
            c.wait_type("session_start", timeout=60)
            c.send_text("hello")
            c.wait_type("response", "error", timeout=60)
    with harness.WSClient(lab.ws_url(token)) as c:
        c.send_json({"tool": 7})
        c.wait_type("error", timeout=15)
    with harness.WSClient(lab.ws_url(token)) as c:
        c.send_text("{")   # no complete handshake; the client leaves
    m = lab.metrics()
    assert gauge(m, "lab_proxy_relays") >= 0
    wait_until(lambda: gauge(lab.metrics(), "lab_connections") == 0 and gauge(lab.metrics(), "lab_proxy_relays") == 0, 20,
               "every relay freed after its session ended")
    assert lab.http("DELETE", "/v1/workers/relaygauge", ADMIN_TOKEN)[0] == 200   # the module's worker cap is 2


def test_admin_api(lab):
    assert lab.http("GET", "/v1/workers")[0] == 401
    assert lab.http("GET", "/v1/workers", "wrong-admin-token-000000")[0] == 401
    status, body = lab.http("POST", "/v1/workers/paul", ADMIN_TOKEN)       # pre-warm
    assert status == 200 and body["user"] == "paul" and body["state"] == "running", body
    assert (Path(lab.env["LAB_WORKSPACE_ROOT"]) / "paul").is_dir()
    with harness.WSClient(lab.ws_url(jwt_hs256(claims("paul")))) as c:
        c.send_json({"tool": "claude"})
        c.wait_type("session_start", timeout=60)
        assert statuses(c) == ["lab.ready"], "a pre-warmed worker is used as is"
        w = lab.worker("paul")
        assert w["connections"] == 1 and w["idle_seconds"] >= 0 and w["last_activity"] > 0 and not w["busy"]
        status, body = lab.http("DELETE", "/v1/workers/paul", ADMIN_TOKEN)
        assert status == 200, body
        stopped = c.wait_for(lambda e: e.get("status") == "lab.stopped", timeout=15)
        assert stopped["metadata"]["reason"] == "admin"
        c.wait_closed(timeout=10)
        assert c.close_code == 1001
    assert lab.worker("paul") is None
    assert lab.http("DELETE", "/v1/workers/paul", ADMIN_TOKEN)[0] == 404
    assert lab.http("DELETE", "/v1/workers/..%2Fetc", ADMIN_TOKEN)[0] in (400, 404)


def test_worker_cap(lab):
    users = ["quinn", "rita", "sam"]
    results = {}
    for u in users:
        results[u] = lab.http("POST", f"/v1/workers/{u}", ADMIN_TOKEN)
    assert [results[u][0] for u in users] == [200, 200, 503], results
    assert "limit of 2 workers" in results["sam"][1]["error"]
    with harness.WSClient(lab.ws_url(jwt_hs256(claims("sam")))) as c:
        c.send_json({"tool": "claude"})
        err = c.wait_type("error", timeout=30)
        assert "limit of 2 workers" in err["text"]
        c.wait_closed(timeout=10)
        assert c.close_code == 1011
    for u in users[:2]:
        assert lab.http("DELETE", f"/v1/workers/{u}", ADMIN_TOKEN)[0] == 200


def test_frame_size_cap(lab):
    with harness.WSClient(lab.ws_url(TOKENS["alice"])) as c:
        c.send_json({"tool": "claude"})
        c.wait_type("session_start", timeout=60)
        c.send_text("x" * 200_000)
        c.wait_closed(timeout=15)
        assert c.close_code == 1009, (c.close_code, c.close_reason)


def test_json_logs(lab):
    lines = [l for l in lab.log_text().splitlines() if l.strip()]
    parsed = [json.loads(l) for l in lines]
    assert all({"ts", "level", "logger", "msg"} <= set(p) for p in parsed)
    assert any(p["msg"] == "worker ready" and p.get("user") for p in parsed)
    # The open-file limit is raised to the hard one, and the connection cap fits it (two sockets each).
    limit = next(p for p in parsed if p["msg"] == "descriptor limit")
    assert limit["soft"] == limit["hard"] and 0 < int(limit["connections_allowed"]) <= (int(limit["soft"]) - 64) // 2


def test_graceful_shutdown_single_mode(labs, lab_dir, tokens_file, fake_api):
    root = str(lab_dir / "ws-shutdown")
    lab = labs.start(single_env(lab_dir, tokens_file, fake_api, LAB_WORKSPACE_ROOT=root), name="shutdown")
    c = lab.client("alice")
    c.send_json({"tool": "claude"})
    c.wait_type("session_start", timeout=60)
    pid = int(lab.worker("alice")["id"].split(":")[1])
    assert lab.stop(signal.SIGTERM) == 0
    ev = c.wait_for(lambda e: e.get("status") == "lab.shutdown", timeout=10)
    assert "shutting down" in ev["text"]
    c.wait_closed(timeout=10)
    assert c.close_code == 1001 and c.close_reason == "controller shutting down"
    assert harness.pid_state(pid) is None, "single-mode workers end with the controller"
    c.close()


def test_two_replicas_race_for_one_user(labs, lab_dir, tokens_file, fake_api, dockerd):
    env = multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_WORKSPACE_ROOT=str(lab_dir / "ws-replicas"))
    a = labs.start(dict(env, LAB_CONTROLLER_ID="replica-a"), name="replica-a")
    b = labs.start(dict(env, LAB_CONTROLLER_ID="replica-b"), name="replica-b")
    token = jwt_hs256(claims("tina"))
    clients: list = []
    errors: list = []
    barrier = threading.Barrier(10)

    def one(lab) -> None:
        try:
            barrier.wait(timeout=30)
            c = harness.WSClient(lab.ws_url(token))
            c.send_json({"tool": "claude"})
            c.wait_type("session_start", timeout=120)
            clients.append(c)
        except BaseException as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(a if i % 2 else b,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    try:
        assert not errors, errors
        assert len(dockerd.containers("lab.user=tina")) == 1
        ids = {a.worker("tina")["id"], b.worker("tina")["id"]}
        assert len(ids) == 1, ids
    finally:
        for c in clients:
            c.close()
        a.stop()
        b.stop()
        dockerd.remove_managed()
