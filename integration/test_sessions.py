"""Durable sessions (docs/protocol.md §7) end to end: the REAL claude binary behind relay-worker, driven by
fakes/fake_anthropic.py, exactly as in test_claude_real.py.

Covered: re-attach with `after_seq` after a detach mid-turn (every missed event once, contiguous, then the
live rest of the turn); a permission asked while no client is attached, answered after re-attaching; two
clients on one session (same seq sequence, one `input_ack` for both); a client that stops reading does not
stall the other one; the detach grace (an idle session ends, a running turn holds it); a restarted worker
lists and replays ended sessions from `--state-dir` (also after a SIGKILL); bad attach requests; hostile
log files; `end_session` from one of two clients.

The model is slowed down with *gates*: a scripted reply that waits for a `threading.Event` the test sets
once the worker is in the state the test wants (no fixed sleeps; every wait is bounded).
relay-worker only (attach is not in ai-relay 0.4.46).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from fakes.fake_anthropic import FakeAnthropic, Text, ToolUse
import harness
from harness import CLAUDE_QUIET_ENV, IMPL, RelayProcess, brief, kill_if_alive, processes_in, wait_until

pytestmark = pytest.mark.skipif(IMPL != "worker", reason="sessions/attach are relay-worker only")

TURN_TIMEOUT = 60.0  # a real claude turn takes ~1-2 s here; generous for a loaded machine
GATE_TIMEOUT = 45.0  # a gated model reply gives up waiting after this (the test fails long before)


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_api():
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def claude_env(fake_api):
    return dict(CLAUDE_QUIET_ENV, ANTHROPIC_BASE_URL=fake_api.url)


def new_state_dir(base: Path) -> Path:
    d = base / f"state-{uuid.uuid4().hex[:6]}"
    d.mkdir(mode=0o700, parents=True)
    return d


@pytest.fixture(scope="module")
def relay(relays, claude_env, tmp_path_factory):
    """A worker with a 30 s detach grace and a state folder (tests 1-4, 7, 9)."""
    state = new_state_dir(tmp_path_factory.mktemp("state30"))
    return relays.start(claude="real", env=claude_env,
                        worker_args=["--detach-grace", "30", "--state-dir", str(state)])


@pytest.fixture(scope="module")
def relay_grace2(relays, claude_env):
    return relays.start(claude="real", env=claude_env, worker_args=["--detach-grace", "2"])


@pytest.fixture
def gates():
    """Gates opened at teardown whatever happens, so no fake-API thread stays blocked."""
    made: list[threading.Event] = []

    def make() -> threading.Event:
        g = threading.Event()
        made.append(g)
        return g

    yield make
    for g in made:
        g.set()


@pytest.fixture
def reap_folder():
    """Folders whose leftover processes are SIGKILLed (by PID) at teardown."""
    folders: list[Path] = []
    yield folders.append
    for f in folders:
        for pid, _ in processes_in(f):
            kill_if_alive(pid)


# ---- helpers ---------------------------------------------------------------------------------


def tag() -> str:
    return uuid.uuid4().hex[:8]


def gated(reply: Any, gate: threading.Event) -> Callable[[Any], Any]:
    """A scripted reply that the fake API sends only once `gate` is set (the model is "slow")."""
    def answer(_req: Any) -> Any:
        gate.wait(GATE_TIMEOUT)
        return reply
    return answer


def is_turn_end(e: dict) -> bool:
    if e.get("type") not in ("response", "error"):
        return False
    raw = e.get("raw")
    if isinstance(raw, dict) and raw.get("type") == "result":
        return True
    return (e.get("metadata") or {}).get("source") == "subprocess_exit_no_result"


def http_get(relay, path: str, token: Optional[str] = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{relay.port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def listing(relay) -> list[dict]:
    status, body = http_get(relay, "/sessions")
    assert status == 200, (status, body[:300])
    doc = json.loads(body)
    assert isinstance(doc, dict) and isinstance(doc.get("sessions"), list), doc
    return doc["sessions"]


def session_info(relay, sid: str) -> Optional[dict]:
    found = [s for s in listing(relay) if s.get("session_id") == sid]
    assert len(found) <= 1, found
    return found[0] if found else None


def wait_session(relay, sid: str, pred: Callable[[dict], bool], timeout: float, what: str) -> dict:
    last: list[Optional[dict]] = [None]

    def check() -> bool:
        last[0] = session_info(relay, sid)
        return last[0] is not None and pred(last[0])

    if not wait_until(check, timeout, interval=0.1):
        pytest.fail(f"session {sid}: timed out after {timeout}s waiting for {what}; last listing entry: {last[0]}"
                    f"\n--- relay log ---\n{relay.log_tail(40)}", pytrace=False)
    assert last[0] is not None
    return last[0]


def healthy(relay) -> bool:
    try:
        status, body = http_get(relay, "/healthz")
    except OSError:
        return False
    return status == 200 and relay.alive()


def start_claude(clients, relay, folder: Path, **extra):
    c = clients(relay)
    start = c.handshake({"tool": "claude", "folder": str(folder), **extra})
    assert start.get("seq") == 1, start
    return c, start


def attach(clients, relay, sid: Any, after_seq: Any = 0, *, with_after: bool = True):
    """Open a socket, send the attach request; returns (client, the `attached` status)."""
    c = clients(relay)
    req: dict[str, Any] = {"attach": sid}
    if with_after:
        req["after_seq"] = after_seq
    c.send_json(req)
    ev = c.wait_for(lambda e: True, 15, what="the first frame after attach")
    if not (ev.get("type") == "status" and ev.get("status") == "attached"):
        c.fail(f"expected the attached status, got {brief(ev)}")
    assert "seq" not in ev, ev
    assert ev.get("session_id") == sid, ev
    return c, ev


def seqs(events: list[dict]) -> list[int]:
    return [e["seq"] for e in events if "seq" in e]


def session_events(events: list[dict]) -> list[dict]:
    return [e for e in events if "seq" in e]


def clean(ev: dict) -> dict:
    return {k: v for k, v in ev.items() if not k.startswith("_")}


def run_turn(c, prompt: str, timeout: float = TURN_TIMEOUT) -> dict:
    c.send_json({"text": prompt})
    return c.wait_for(is_turn_end, timeout, what=f"end of the turn {prompt!r}")


def assert_contiguous(got: list[int], first: int, what: str) -> None:
    assert got, f"{what}: no session events"
    assert got[0] == first, f"{what}: first seq {got[0]}, expected {first}: {got}"
    assert got == list(range(first, first + len(got))), f"{what}: seq not contiguous: {got}"


# ---- a raw WebSocket client that can stop reading ----------------------------------------------


class RawWS:
    """A WebSocket client on a plain TCP socket (tiny receive buffer): after the upgrade and its first
    frame it reads nothing until the test says so, so the worker's writes to it stall."""

    def __init__(self, port: int, rcvbuf: int = 2048) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:  # byte by byte: nothing after the head is consumed
            b = self.sock.recv(1)
            if not b:
                raise ConnectionError(f"closed during the upgrade: {head!r}")
            head += b
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buf = b""
        self.close_code: Optional[int] = None

    def send_text(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, n: int, deadline: float) -> bool:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(min(left, 5))
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return False
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read_messages(self, until: Callable[[dict], bool], timeout: float) -> tuple[list[dict], bool]:
        """Decoded JSON messages until `until(msg)` or the close; (messages, closed)."""
        deadline = time.monotonic() + timeout
        out: list[dict] = []
        parts = b""
        while True:
            if not self._need(2, deadline):
                return out, True
            b0, b1 = self.buf[0], self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if not self._need(4, deadline):
                    return out, True
                n, off = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if not self._need(10, deadline):
                    return out, True
                n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
            if not self._need(off + n, deadline):
                return out, True
            payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
            op = b0 & 0x0F
            if op == 8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return out, True
            if op in (1, 0):
                parts += payload
                if b0 & 0x80:
                    msg = json.loads(parts)
                    parts = b""
                    out.append(msg)
                    if until(msg):
                        return out, False
            # ping (9) / pong (10): ignored (no pong: the test reads only briefly)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---- 1. re-attach after a detach mid-turn ------------------------------------------------------


def test_reattach_replays_missed_events_once(relay, fake_api, clients, workdir, gates, reap_folder):
    reap_folder(workdir)
    t = tag()
    first_file = workdir / f"first-{t}.txt"
    second_file = workdir / f"second-{t}.txt"
    first_file.write_text(f"first {t}\n")
    second_file.write_text(f"second {t}\n")
    gate1, gate2 = gates(), gates()
    prompt = f"Read two files please [{t}]"
    fake_api.script(prompt, [
        ToolUse("Read", {"file_path": str(first_file)}),
        gated(ToolUse("Read", {"file_path": str(second_file)}), gate1),
        gated(Text(f"Both files read [{t}]."), gate2),
    ])
    a, start = start_claude(clients, relay, workdir)
    sid = start["session_id"]
    a.send_json({"text": prompt})
    call = a.wait_type("tool_call", timeout=TURN_TIMEOUT)
    assert call["args"]["file_path"] == str(first_file), call
    last_seen = max(seqs(a.events))
    assert_contiguous(seqs(a.events), 1, "first client")
    a.close()

    wait_session(relay, sid, lambda s: s["clients"] == 0, 10, "clients == 0 after the close")
    gate1.set()  # the second tool runs while nobody is attached
    fake_api.wait_for_request(lambda r: r.prompt is not None and t in r.prompt and r.step == 2, TURN_TIMEOUT)
    info = wait_session(relay, sid, lambda s: s["last_seq"] > last_seen + 1, 10, "events while detached")
    assert info["state"] == "running", info

    b, attached = attach(clients, relay, sid, last_seen)
    assert attached["state"] == "running", attached
    last = attached["last_seq"]
    assert isinstance(last, int) and last > last_seen + 1, (attached, last_seen)
    b.wait_for(lambda e: e.get("seq") == last, 15, what=f"replay up to seq {last}")
    gate2.set()  # the rest of the turn is live
    end = b.wait_for(is_turn_end, TURN_TIMEOUT, what="the turn's response after re-attaching")
    assert end["type"] == "response" and end["text"] == f"Both files read [{t}].", end

    got = seqs(b.events)
    assert_contiguous(got, last_seen + 1, "re-attached client")
    assert got[-1] == end["seq"]
    assert len(got) == len(set(got))
    assert not [e for e in b.events if e.get("status") == "replay_gap"], "no gap expected (all kept in memory)"
    calls = [e for e in b.events if e["type"] == "tool_call"]
    assert [c["args"]["file_path"] for c in calls] == [str(second_file)], calls
    assert any(e["type"] == "tool_result" and e.get("tool_use_id") == calls[0]["tool_use_id"] for e in b.events)
    assert all(e["session_id"] == sid for e in b.events)


# ---- 2. a permission asked while nobody is attached --------------------------------------------


def test_permission_pending_while_detached(relay, fake_api, clients, workdir, gates, reap_folder):
    reap_folder(workdir)
    t = tag()
    target = workdir / f"detached-{t}.txt"
    gate = gates()
    prompt = f"Write a file while I am away [{t}]"
    fake_api.script(prompt, [
        gated(ToolUse("Write", {"file_path": str(target), "content": f"written while detached {t}\n"}), gate),
        Text(f"Wrote it [{t}]."),
    ])
    a, start = start_claude(clients, relay, workdir)
    sid = start["session_id"]
    a.send_json({"text": prompt})
    a.close()  # right after the prompt

    wait_session(relay, sid, lambda s: s["clients"] == 0, 10, "clients == 0 after the close")
    fake_api.wait_for_request(lambda r: r.prompt is not None and t in r.prompt, TURN_TIMEOUT)
    gate.set()  # now the model asks for the Write: nobody is attached
    info = wait_session(relay, sid, lambda s: s["state"] == "waiting_permission", TURN_TIMEOUT,
                        "state waiting_permission")
    assert info["clients"] == 0, info
    assert not target.exists()

    b, attached = attach(clients, relay, sid, 0)
    assert attached["state"] == "waiting_permission", attached
    perm = b.wait_type("permission_request", timeout=15)
    assert perm["tool"] == "Write" and perm["args"]["file_path"] == str(target), perm
    assert perm["seq"] <= attached["last_seq"], "the request must come from the replay"
    acks = [e for e in b.events if e["type"] == "input_ack"]
    assert [x.get("text") for x in acks] == [prompt], "the prompt sent just before the close was taken"
    b.send_json({"type": "permission_response", "request_id": perm["request_id"], "behavior": "allow",
                 "updatedInput": perm["args"], "tool_use_id": perm["tool_use_id"]})
    end = b.wait_for(is_turn_end, TURN_TIMEOUT, what="end of the turn after allow")
    assert end["type"] == "response" and end["text"] == f"Wrote it [{t}].", end
    assert target.read_text() == f"written while detached {t}\n"
    assert_contiguous(seqs(b.events), 1, "re-attached client")
    wait_session(relay, sid, lambda s: s["state"] == "idle", 10, "state idle after the turn")


# ---- 3. two clients on one session -------------------------------------------------------------


def test_two_clients_share_one_sequence(relay, fake_api, clients, workdir, reap_folder):
    reap_folder(workdir)
    t = tag()
    p1, p2 = f"First from the second client [{t}]", f"Then from the first client [{t}]"
    fake_api.script(p1, Text(f"Answer one [{t}]."))
    fake_api.script(p2, Text(f"Answer two [{t}]."))
    a, start = start_claude(clients, relay, workdir)
    sid = start["session_id"]
    b, attached = attach(clients, relay, sid, 0)
    assert attached["last_seq"] >= 1 and attached["state"] == "idle", attached
    b.wait_for(lambda e: e.get("seq") == 1, 10, what="session_start replayed")

    b.send_json({"text": p1})
    for c in (a, b):
        c.wait_for(lambda e: e["type"] == "input_ack" and e.get("text") == p1, TURN_TIMEOUT, what="ack of p1")
        end = c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of turn 1")
        assert end["type"] == "response" and end["text"] == f"Answer one [{t}].", end
    a.send_json({"text": p2})
    ends = []
    for c in (a, b):
        c.wait_for(lambda e: e["type"] == "input_ack" and e.get("text") == p2, TURN_TIMEOUT, what="ack of p2")
        ends.append(c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of turn 2"))
    assert ends[0]["seq"] == ends[1]["seq"]

    sa = [clean(e) for e in session_events(a.events) if e["seq"] <= ends[0]["seq"]]
    sb = [clean(e) for e in session_events(b.events) if e["seq"] <= ends[0]["seq"]]
    assert_contiguous([e["seq"] for e in sa], 1, "first client")
    assert sa == sb, "both clients must see the same events with the same seq"
    assert [e["text"] for e in sa if e["type"] == "input_ack"] == [p1, p2]
    # The status frames outside the session carry no seq.
    assert all("seq" not in e for e in b.events if e.get("status") == "attached")
    assert session_info(relay, sid)["clients"] == 2


# ---- 4. a client that stops reading ------------------------------------------------------------


def test_stalled_reader_does_not_block_the_other(relay, fake_api, clients, workdir, reap_folder):
    reap_folder(workdir)
    t = tag()
    prompt = f"Write me a long essay [{t}]"
    essay = (f"[{t}] " + "All work and no play makes the relay a dull worker. " * 8000)  # ~420 KB
    fake_api.script(prompt, Text(essay, chunks=40))
    a, start = start_claude(clients, relay, workdir)
    sid = start["session_id"]
    raw = RawWS(relay.port)
    try:
        raw.send_text(json.dumps({"attach": sid, "after_seq": 0}))
        wait_session(relay, sid, lambda s: s["clients"] == 2, 10, "two clients")
        t0 = time.monotonic()
        a.send_json({"text": prompt})
        end = a.wait_for(is_turn_end, 60, what="the reading client's turn while the other reads nothing")
        assert end["type"] == "response" and end["text"] == essay, (end["type"], len(end.get("text") or ""))
        assert time.monotonic() - t0 < 60
        assert healthy(relay)
        # A second turn still goes through on the reading client.
        p2 = f"Short one now [{t}]"
        fake_api.script(p2, Text(f"Short [{t}]."))
        assert run_turn(a, p2)["text"] == f"Short [{t}]."

        # The stalled client now reads: in order, no duplicate; a gap or a close 1008 are allowed.
        want = a.events[-1]["seq"]
        msgs, closed = raw.read_messages(lambda m: m.get("seq") == want, 30)
        assert msgs and msgs[0].get("status") == "attached", [brief(m) for m in msgs[:3]]
        got = [m["seq"] for m in msgs if "seq" in m]
        assert got == sorted(set(got)), f"duplicate or decreasing seq on the slow client: {got}"
        if closed:
            assert raw.close_code in (1008, None), raw.close_code
        else:
            expect, i = 1, 0
            for m in msgs[1:]:
                if m.get("status") == "replay_gap":
                    expect = m["first_seq"]
                    continue
                assert m.get("seq") == expect, (m.get("seq"), expect, i)
                expect += 1
            assert got[-1] == want
    finally:
        raw.close()
    assert healthy(relay)


# ---- 5. the detach grace -----------------------------------------------------------------------


def test_grace_ends_an_idle_detached_session(relay_grace2, fake_api, clients, workdir, reap_folder):
    reap_folder(workdir)
    relay = relay_grace2
    t = tag()
    prompt = f"Quick answer [{t}]"
    fake_api.script(prompt, Text(f"Quick [{t}]."))
    a, start = start_claude(clients, relay, workdir)
    sid = start["session_id"]
    assert run_turn(a, prompt)["type"] == "response"
    assert processes_in(workdir), "expected a live claude process after the turn"
    a.close()
    info = wait_session(relay, sid, lambda s: s["state"] == "ended", 20, "state ended after the grace")
    assert info["clients"] == 0, info
    assert wait_until(lambda: not processes_in(workdir), 10), processes_in(workdir)
    # Its log still replays, ending with session_end and a close.
    b, attached = attach(clients, relay, sid, 0)
    assert attached["state"] == "ended"
    evs = b.wait_closed(15)
    assert b.close_code == 1000, b.close_code
    assert_contiguous(seqs(evs), 1, "replay of the ended session")
    assert evs[-1]["type"] == "session_end" and evs[-1]["seq"] == attached["last_seq"]


def test_grace_never_ends_a_running_turn(relay_grace2, fake_api, clients, workdir, gates, reap_folder):
    reap_folder(workdir)
    relay = relay_grace2
    t = tag()
    hold = gates()
    prompt = f"Think for a long time [{t}]"
    fake_api.script(prompt, Text(f"Finally done [{t}].", chunks=3, hold=hold, hold_timeout=GATE_TIMEOUT))
    a, start = start_claude(clients, relay, workdir)
    sid = start["session_id"]
    a.send_json({"text": prompt})
    fake_api.wait_for_request(lambda r: r.prompt is not None and t in r.prompt, TURN_TIMEOUT)
    a.close()
    wait_session(relay, sid, lambda s: s["clients"] == 0, 10, "clients == 0")
    # Watch it for well over the 2 s grace: it must stay running, with its agent.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        info = session_info(relay, sid)
        assert info is not None and info["state"] == "running", info
        assert processes_in(workdir), "the agent was stopped mid-turn"
        time.sleep(0.2)  # polling interval of a bounded observation window
    hold.set()
    info = wait_session(relay, sid, lambda s: s["state"] == "ended", 20, "ended once the turn finished")
    assert wait_until(lambda: not processes_in(workdir), 10), processes_in(workdir)
    b, attached = attach(clients, relay, sid, 0)
    evs = b.wait_closed(15)
    ends = [e for e in evs if is_turn_end(e)]
    assert ends and ends[0]["type"] == "response" and ends[0]["text"] == f"Finally done [{t}].", [brief(e) for e in evs]
    assert evs[-1]["type"] == "session_end"
    assert_contiguous(seqs(evs), 1, "replay")
    assert ends[0]["seq"] < evs[-1]["seq"]


# ---- 6. restart with the same --state-dir --------------------------------------------------------


def collect_replay(clients, relay, sid: str, after: int = 0, timeout: float = 15):
    c, attached = attach(clients, relay, sid, after)
    evs = c.wait_closed(timeout)
    return c, attached, evs[1:]


def test_restart_lists_and_replays_ended_sessions(relays, claude_env, fake_api, clients, workdir, tmp_path, reap_folder):
    reap_folder(workdir)
    state = new_state_dir(tmp_path)
    args = ["--detach-grace", "30", "--state-dir", str(state)]
    w1 = relays.start(claude="real", env=claude_env, worker_args=args)
    t = tag()
    px, py = f"Session X speaks [{t}]", f"Session Y speaks [{t}]"
    fake_api.script(px, Text(f"X answered [{t}]."))
    fake_api.script(py, Text(f"Y answered [{t}]."))
    x, sx = start_claude(clients, w1, workdir)
    run_turn(x, px)
    x.send_json({"type": "end_session"})
    x.wait_closed(15)
    y, sy = start_claude(clients, w1, workdir)
    run_turn(y, py)
    y_live = [clean(e) for e in session_events(y.events)]
    w1.stop()  # SIGTERM: Y ends with its session_end
    y.wait_closed(15)
    assert y.events[-1]["type"] == "session_end", brief(y.events[-1])
    live = {sx["session_id"]: [clean(e) for e in session_events(x.events)],
            sy["session_id"]: [clean(e) for e in session_events(y.events)]}
    assert len(live[sy["session_id"]]) == len(y_live) + 1

    w2 = relays.start(claude="real", env=claude_env, worker_args=args)
    listed = {s["session_id"]: s for s in listing(w2)}
    for sid, seen in live.items():
        assert sid in listed, (sid, list(listed))
        s = listed[sid]
        assert s["state"] == "ended" and s["clients"] == 0, s
        assert s["tool"] == "claude" and s["folder"] == str(workdir), s
        assert s["last_seq"] == seen[-1]["seq"], (s, seen[-1])
        c, attached, evs = collect_replay(clients, w2, sid)
        assert attached["state"] == "ended" and attached["last_seq"] == s["last_seq"], attached
        assert c.close_code == 1000, c.close_code
        got = seqs(evs)
        assert_contiguous(got, 1, f"replay of {sid}")
        assert len(got) == len(evs), "only session events after `attached`"
        assert evs[0]["type"] == "session_start" and evs[-1]["type"] == "session_end"
        assert [clean(e) for e in evs] == seen, "the replay must be the events exactly as sent"
        # A cursor in the middle replays the rest only.
        mid = len(got) // 2
        _, _, rest = collect_replay(clients, w2, sid, mid)
        assert [clean(e) for e in rest] == seen[mid:]
    assert listed[sx["session_id"]]["last_seq"] == live[sx["session_id"]][-1]["seq"]
    x_end = live[sx["session_id"]][-1]
    assert (x_end.get("metadata") or {}).get("reason") == "end_session", x_end
    # An ended session's id may be used again: the new session replaces it in the listing.
    pz = f"Reusing an id [{t}]"
    fake_api.script(pz, Text(f"Reused [{t}]."))
    z, sz = start_claude(clients, w2, workdir, session_id=sx["session_id"])
    assert run_turn(z, pz)["text"] == f"Reused [{t}]."
    assert session_info(w2, sx["session_id"])["state"] == "idle"


def test_restart_after_sigkill_adds_session_end(relays, claude_env, fake_api, clients, workdir, tmp_path, reap_folder):
    reap_folder(workdir)
    state = new_state_dir(tmp_path)
    args = ["--detach-grace", "30", "--state-dir", str(state)]
    w1 = relays.start(claude="real", env=claude_env, worker_args=args)
    t = tag()
    p = f"Before the crash [{t}]"
    fake_api.script(p, Text(f"Pre-crash [{t}]."))
    a, start = start_claude(clients, w1, workdir)
    sid = start["session_id"]
    run_turn(a, p)
    seen = [clean(e) for e in session_events(a.events)]
    os.killpg(w1.proc.pid, signal.SIGKILL)  # the worker and its agents (its own process group)
    w1.proc.wait(timeout=10)
    w1.proc = None
    a.wait_closed(15)

    w2 = relays.start(claude="real", env=claude_env, worker_args=args)
    s = session_info(w2, sid)
    assert s is not None and s["state"] == "ended", s
    assert s["last_seq"] == seen[-1]["seq"] + 1, (s, seen[-1]["seq"])
    c, attached, evs = collect_replay(clients, w2, sid)
    assert_contiguous(seqs(evs), 1, "replay after SIGKILL")
    assert [clean(e) for e in evs[:-1]] == seen
    assert evs[-1]["type"] == "session_end" and evs[-1]["metadata"]["reason"] == "worker_restarted", evs[-1]
    # A second restart does not add a second session_end.
    w2.stop()
    w3 = relays.start(claude="real", env=claude_env, worker_args=args)
    _, attached3, evs3 = collect_replay(clients, w3, sid)
    assert [clean(e) for e in evs3] == [clean(e) for e in evs]
    assert attached3["last_seq"] == attached["last_seq"]


# ---- 7. bad attach requests --------------------------------------------------------------------


def test_bad_attach_requests(relay, fake_api, clients, workdir, reap_folder):
    reap_folder(workdir)
    t = tag()
    p0, p1 = f"Witness before [{t}]", f"Witness after [{t}]"
    fake_api.script(p0, Text(f"Witness one [{t}]."))
    fake_api.script(p1, Text(f"Witness two [{t}]."))
    w, start = start_claude(clients, relay, workdir)
    sid = start["session_id"]
    run_turn(w, p0)
    last = session_info(relay, sid)["last_seq"]
    assert last == max(seqs(w.events)), (last, seqs(w.events))

    bad: list[Any] = [
        {"attach": f"no-such-session-{t}"},
        {"attach": f"no-such-session-{t}", "after_seq": 0},
        {"attach": 7}, {"attach": None}, {"attach": []}, {"attach": {}}, {"attach": True}, {"attach": ""},
        {"attach": "x" * 257}, {"attach": "a\nb"}, {"attach": "\u0007" + sid},
        {"attach": sid, "after_seq": -1},
        {"attach": sid, "after_seq": 2 ** 40},
        {"attach": sid, "after_seq": 2 ** 31},
        {"attach": sid, "after_seq": 2 ** 31 - 1},
        {"attach": sid, "after_seq": 1e300},
        {"attach": sid, "after_seq": last + 1},
        {"attach": sid, "after_seq": 1.5},
        {"attach": sid, "after_seq": "1"},
        {"attach": sid, "after_seq": True},
        {"attach": sid, "after_seq": [1]},
    ]
    texts = [json.dumps(b) for b in bad] + [
        '{"attach": "%s", "after_seq": 1e400}' % sid,            # overflows a double
        '{"attach": "%s", "after_seq": 99999999999999999999999}' % sid,  # beyond Int64
        '{"attach": "%s", "after_seq": -0.5}' % sid,
    ]
    for text in texts:
        c = clients(relay)
        c.send_text(text)
        evs = c.wait_closed(10)
        assert len(evs) == 1 and evs[0]["type"] == "error", (text[:80], [brief(e) for e in evs])
        assert "seq" not in evs[0], (text[:80], evs[0])
        assert c.close_code == 1000, (text[:80], c.close_code)
    assert healthy(relay)
    info = session_info(relay, sid)
    assert info["last_seq"] == last and info["clients"] == 1, info  # no event, no client left behind
    # The witness saw none of it and still answers.
    assert not [e for e in w.events if e["type"] == "error"], [brief(e) for e in w.events]
    end = run_turn(w, p1)
    assert end["type"] == "response" and end["text"] == f"Witness two [{t}]."
    assert_contiguous(seqs(w.events), 1, "witness")
    # A valid attach at exactly last_seq works (nothing replayed, then live).
    ok, attached = attach(clients, relay, sid, end["seq"])
    assert attached["last_seq"] == end["seq"]


# ---- 8. hostile log files ------------------------------------------------------------------------


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _with_sid(line: bytes, old: str, new: str) -> bytes:
    return line.replace(json.dumps(old).encode(), json.dumps(new).encode())


def _check_replay(sid: str, attached: dict, evs: list[dict]) -> list[int]:
    """The contract for any log: in order, no duplicate, this session only, gaps announced."""
    got: list[int] = []
    expect = None
    for e in evs:
        assert e.get("session_id") == sid, (sid, brief(e))
        if e.get("type") == "status" and e.get("status") == "replay_gap":
            assert "seq" not in e
            expect = e["first_seq"]
            continue
        if e.get("type") == "error":
            assert "seq" not in e
            continue
        assert isinstance(e.get("seq"), int), brief(e)
        if expect is not None:
            assert e["seq"] == expect, (sid, e["seq"], expect, [brief(x, 120) for x in evs])
        assert not got or e["seq"] > got[-1], (sid, got, e["seq"])
        got.append(e["seq"])
        expect = e["seq"] + 1
    assert len(got) == len(set(got))
    assert got, f"{sid}: nothing replayed (it ends with a session_end at least)"
    assert got[-1] == attached["last_seq"], (sid, got, attached)
    assert evs[-1]["type"] == "session_end", (sid, brief(evs[-1]))
    return got


def test_hostile_logs_never_crash_or_repeat(relays, claude_env, fake_api, clients, workdir, tmp_path, reap_folder):
    reap_folder(workdir)
    state = new_state_dir(tmp_path)
    args = ["--detach-grace", "30", "--state-dir", str(state)]
    w1 = relays.start(claude="real", env=claude_env, worker_args=args)
    t = tag()
    p = f"A turn for the log [{t}]"
    fake_api.script(p, [ToolUse("Read", {"file_path": str(workdir / "nothing.txt")}), Text(f"Logged [{t}].")])
    a, start = start_claude(clients, w1, workdir)
    orig = start["session_id"]
    run_turn(a, p)
    a.send_json({"type": "end_session"})
    a.wait_closed(15)
    w1.stop()

    folders = [d for d in state.iterdir() if (d / "meta.json").is_file()]
    assert len(folders) == 1, folders
    src = folders[0]
    good = _lines(src / "events.jsonl")
    assert len(good) >= 8, len(good)  # enough lines to damage the middle
    L = len(good)
    meta = json.loads((src / "meta.json").read_text())

    def variant(name: str, make_lines: Callable[[str], list[bytes]] | None = None) -> tuple[str, Path]:
        sid = f"hostile-{name}-{t}"
        d = state / f"s-{int(time.time() * 1000)}-{name}"
        d.mkdir(mode=0o700)
        (d / "meta.json").write_text(json.dumps(dict(meta, session_id=sid)))
        if make_lines is not None:
            lines = make_lines(sid)
            (d / "events.jsonl").write_bytes(b"".join(x + b"\n" for x in lines))
        return sid, d

    def relabel(sid: str) -> list[bytes]:
        return [_with_sid(x, orig, sid) for x in good]

    mid = L // 2
    cases: dict[str, str] = {}

    def truncated(sid):
        ls = relabel(sid)
        ls[mid] = ls[mid][: len(ls[mid]) // 2]
        return ls
    cases["truncated"], _ = variant("truncated", truncated)

    def truncated_merged(sid):  # a cut line without its newline runs into the next one
        ls = relabel(sid)
        return ls[:mid] + [ls[mid][: len(ls[mid]) // 2] + ls[mid + 1]] + ls[mid + 2:]
    cases["merged"], _ = variant("merged", truncated_merged)

    def garbage(sid):
        ls = relabel(sid)
        junk = [b"", b"not json at all", b"\xff\xfe\x00garbage", b"[]", b"{}", b"null", b"42",
                b'{"type":"x"}', b'{"type":"assistant_message","session_id":"%s","seq":"3"}' % sid.encode(),
                b'{"type":"assistant_message","session_id":"%s","seq":-1}' % sid.encode(),
                b'{"type":"assistant_message","session_id":"%s","seq":0}' % sid.encode(),
                b'{"type":"assistant_message","session_id":"%s","seq":1e300}' % sid.encode(),
                b'{"type":"assistant_message","session_id":"%s","seq":99999999999999999999999}' % sid.encode(),
                b'{"type":"assistant_message","session_id":"%s","seq":2147483647}' % sid.encode(),
                b'{"type":"assistant_message","session_id":"%s","seq":2.5}' % sid.encode(),
                b'{"type":7,"session_id":"%s","seq":3}' % sid.encode(),
                b"[" * 200000, b'{"a":' * 100000, b'"\\ud800"', b'{"type":"x","seq":2,' + b"x" * 100000]
        return ls[:2] + junk + ls[2:mid] + junk + ls[mid:] + junk
    cases["garbage"], _ = variant("garbage", garbage)

    def wrong_seq(sid):
        ls = relabel(sid)
        o = json.loads(ls[mid])
        o["seq"] = o["seq"] + 40
        ls[mid] = json.dumps(o).encode()
        return ls
    cases["wrong_seq"], _ = variant("wrong_seq", wrong_seq)

    def backwards_seq(sid):
        ls = relabel(sid)
        o = json.loads(ls[mid])
        o["seq"] = 1
        ls[mid] = json.dumps(o).encode()
        return ls
    cases["backwards_seq"], _ = variant("backwards_seq", backwards_seq)

    def duplicated(sid):
        ls = relabel(sid)
        return ls[:mid] + [ls[mid - 1], ls[mid - 2]] + ls[mid:]
    cases["duplicated"], _ = variant("duplicated", duplicated)

    def other_session(sid):
        ls = relabel(sid)
        ls[mid] = _with_sid(ls[mid], sid, orig)  # a line of another (real) session
        return ls
    cases["other_session"], _ = variant("other_session", other_session)

    def shuffled(sid):
        ls = relabel(sid)
        return list(reversed(ls))
    cases["reversed"], _ = variant("reversed", shuffled)

    def no_final_newline_end(sid):
        ls = relabel(sid)
        return ls[:-1]  # the session_end is missing (a crash): the worker adds one
    cases["no_end"], _ = variant("no_end", no_final_newline_end)

    cases["empty"], d_empty = variant("empty", lambda sid: [])

    # events.jsonl a symlink to another session folder's log (the original one).
    cases["symlink"], d_link = variant("symlink")
    (d_link / "events.jsonl").symlink_to(src / "events.jsonl")
    # events.jsonl a directory, and a FIFO nobody writes to (a reader must not hang on it).
    cases["dir"], d_dir = variant("dir")
    (d_dir / "events.jsonl").mkdir()
    # A meta.json that is garbage, a symlink, huge or deeply nested: the folder is skipped.
    skipped = []
    for name, content in [("meta_garbage", b"\x00\xffnot json"), ("meta_nested", b"[" * 60000),
                          ("meta_huge", json.dumps({"session_id": f"hostile-meta_huge-{t}", "x": "y" * 70000}).encode())]:
        sid, d = variant(name, relabel)
        (d / "meta.json").write_bytes(content)
        skipped.append(sid)
    sid, d = variant("meta_link", relabel)
    (d / "meta.json").unlink()
    (d / "meta.json").symlink_to(src / "meta.json")
    skipped.append(sid)
    # A second folder claiming the original session's id.
    dup_sid, d_dup = variant("dup", lambda sid: relabel(orig)[:3])
    (d_dup / "meta.json").write_text(json.dumps(meta))
    # Non-folders and foreign names in the state folder.
    (state / "s-not-a-folder").write_text("x")
    (state / "s-dangling").symlink_to(state / "does-not-exist")
    os.mkfifo(state / "s-fifo")

    src_bytes = (src / "events.jsonl").read_bytes()
    results: dict[str, list[int]] = {}
    for round_ in (1, 2):  # twice: a restart must not change what the first one read back
        w = relays.start(claude="real", env=claude_env, worker_args=args)
        assert healthy(w)
        listed = {s["session_id"]: s for s in listing(w)}
        for sid in skipped:
            assert sid not in listed, listed.get(sid)
        for name, sid in cases.items():
            assert sid in listed and listed[sid]["state"] == "ended", (name, listed.get(sid))
            _, attached, evs = collect_replay(clients, w, sid)
            got = _check_replay(sid, attached, evs)
            if round_ == 1:
                results[name] = got
            else:
                assert got == results[name], (name, got, results[name])
            # From a cursor in the middle as well.
            if attached["last_seq"] >= 3:
                _, att2, evs2 = collect_replay(clients, w, sid, 2)
                got2 = _check_replay(sid, att2, evs2)
                assert got2 == [s for s in got if s > 2], (name, got2, got)
            assert healthy(w), name
        # The original session's replay is untouched by its impostor.
        _, attached, evs = collect_replay(clients, w, orig)
        # The newest folder naming an id wins (as when an ended id is used again): the impostor's 3
        # lines + the worker's session_end, or the original log; never a mix of the two.
        got = _check_replay(orig, attached, evs)
        assert got in (list(range(1, L + 1)), [1, 2, 3, 4]), got
        assert (src / "events.jsonl").read_bytes() == src_bytes, "a symlinked log wrote into another session's log"
        # Still a working worker: a new session answers.
        pn = f"After the hostile logs round {round_} [{t}]"
        fake_api.script(pn, Text(f"Still fine {round_} [{t}]."))
        n, _ = start_claude(clients, w, workdir)
        assert run_turn(n, pn)["text"] == f"Still fine {round_} [{t}]."
        n.send_json({"type": "end_session"})
        n.wait_closed(15)
        assert healthy(w)
        w.stop()

    # Logs that are clean apart from skipped lines replay in full.
    full = list(range(1, L + 1))
    for name in ("garbage", "duplicated"):
        assert results[name] == full, (name, results[name])
    # Damage in the middle: the valid prefix, then (at most) a gap or the added session_end.
    for name in ("truncated", "merged", "wrong_seq", "backwards_seq", "other_session"):
        assert results[name][:mid] == list(range(1, mid + 1)), (name, results[name])
    assert results["no_end"] == full  # L-1 lines + the worker's session_end
    for name in ("empty", "symlink", "dir"):
        assert results[name] == [1], (name, results[name])  # only the worker's session_end


# ---- 9. end_session from one of two clients ------------------------------------------------------


def test_end_session_closes_every_client(relay, fake_api, clients, workdir, gates, reap_folder):
    reap_folder(workdir)
    t = tag()
    hold = gates()
    prompt = f"Start something long [{t}]"
    fake_api.script(prompt, Text(f"Never finished [{t}].", chunks=3, hold=hold, hold_timeout=GATE_TIMEOUT))
    a, start = start_claude(clients, relay, workdir)
    sid = start["session_id"]
    b, _ = attach(clients, relay, sid, 0)
    a.send_json({"text": prompt})
    fake_api.wait_for_request(lambda r: r.prompt is not None and t in r.prompt, TURN_TIMEOUT)
    assert processes_in(workdir), "expected the claude process mid-turn"
    assert session_info(relay, sid)["state"] == "running"

    b.send_json({"type": "end_session"})
    ends = []
    for c in (a, b):
        evs = c.wait_closed(15)
        assert c.close_code == 1000, c.close_code
        end = [e for e in evs if e["type"] == "session_end"]
        assert len(end) == 1 and evs[-1] is end[0], [brief(e) for e in evs[-5:]]
        assert (end[0].get("metadata") or {}).get("reason") == "end_session", end[0]
        ends.append(end[0]["seq"])
        got = seqs(evs)
        assert got == sorted(set(got))
    assert ends[0] == ends[1]
    assert wait_until(lambda: not processes_in(workdir), 10), processes_in(workdir)
    info = session_info(relay, sid)
    assert info["state"] == "ended" and info["clients"] == 0 and info["last_seq"] == ends[0], info
    assert healthy(relay)


def test_fifo_in_a_log_folder_does_not_block_start(relays, claude_env, fake_api, clients, workdir, tmp_path, reap_folder):
    """A FIFO as events.jsonl (or meta.json): nobody writes or reads it, so any blocking open hangs the
    worker. It must start, list the session as ended (events.jsonl) or skip it (meta.json), and serve."""
    reap_folder(workdir)
    state = new_state_dir(tmp_path)
    t = tag()
    meta = {"session_id": f"fifo-log-{t}", "tool": "claude", "folder": str(workdir), "model": None,
            "created_at": time.time()}
    d = state / f"s-{int(time.time() * 1000)}-fifo"
    d.mkdir(mode=0o700)
    (d / "meta.json").write_text(json.dumps(meta))
    os.mkfifo(d / "events.jsonl")
    d2 = state / f"s-{int(time.time() * 1000)}-fifometa"
    d2.mkdir(mode=0o700)
    os.mkfifo(d2 / "meta.json")
    os.mkfifo(state / "s-fifo")
    # Built here rather than with relays.start: a worker that hangs must fail within seconds (3 × 3 s).
    workdir_w = tmp_path / "fifo-worker"
    w = RelayProcess(impl="worker", workdir=workdir_w, path_dirs=[harness.make_bin_dir(workdir_w / "bin", claude="real")],
                     env_extra=dict(claude_env), worker_args=["--state-dir", str(state)], ready_timeout=3.0)
    try:
        w.start()
    except RuntimeError as exc:
        pytest.fail(f"the worker did not start with a FIFO in its state folder: {exc}", pytrace=False)
    relays.started.append(w)
    assert healthy(w)
    s = session_info(w, meta["session_id"])
    assert s is not None and s["state"] == "ended", s
    _, attached, evs = collect_replay(clients, w, meta["session_id"])
    assert _check_replay(meta["session_id"], attached, evs) == [1]
    p = f"After the FIFO [{t}]"
    fake_api.script(p, Text(f"Fine after the FIFO [{t}]."))
    n, _ = start_claude(clients, w, workdir)
    assert run_turn(n, p)["text"] == f"Fine after the FIFO [{t}]."
