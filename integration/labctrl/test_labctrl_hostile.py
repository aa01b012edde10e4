"""Hostile input through labctrl, in single and multi mode: a hostile-frame battery from
one user (alice).

Each hostile input gets an `error` event or a clean close (never a crash, never a stall); after each,
`/healthz` answers and a **witness** session of ANOTHER user (bob, a real Claude Code turn against the
fake model API) completes a turn within WITNESS_BUDGET seconds. Cases:

- handshakes: oversize (error + 1009), 100 k keys (refused within 2 s, unparsed), nesting 100 k deep,
  invalid UTF-8 (1007, also split across fragments and as CESU surrogate bytes), lone surrogate escapes,
  binary, huge/tiny numbers in id fields;
- after `session_start`: `permission_response` with request_id 1e300 / -1e300 / 1e-300 / 2^64 (the first
  crashed labctrl before), a 100 k-key prompt object, nesting 100 k deep, an `input_ack` echoing 1 MB,
  invalid UTF-8 (1007), binary frames.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

import harness
from fakes.fake_anthropic import Text

from labsupport import TOKENS, multi_env, single_env

WITNESS_BUDGET = 2.0
ANSWER_BUDGET = 2.0  # a refused hostile handshake is answered within this


@pytest.fixture(scope="module", params=["single", "multi"])
def lab(request, labs, lab_dir, tokens_file, fake_api):
    if request.param == "single":
        yield labs.start(single_env(lab_dir, tokens_file, fake_api, LAB_WORKSPACE_ROOT=str(lab_dir / "ws-hostile")), name="hostile")
        return
    dockerd = request.getfixturevalue("dockerd")  # skips when LAB_TEST_DOCKER=0
    lab = labs.start(multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_WORKSPACE_ROOT=str(lab_dir / "ws-hostile-multi")),
                     name="hostile-multi")
    yield lab
    lab.stop()
    dockerd.remove_managed()


class Witness:
    """Bob's long-lived session: every check is one full turn, bounded by WITNESS_BUDGET."""

    def __init__(self, lab, fake_api) -> None:
        self.lab, self.fake = lab, fake_api
        self.client = lab.client("bob")
        self.client.send_json({"tool": "claude", "session_id": "witness"})
        self.client.wait_type("session_start", timeout=90)
        self.turn(budget=90)  # the first turn starts Claude Code: not timed

    def turn(self, budget: float = WITNESS_BUDGET) -> float:
        t = uuid.uuid4().hex[:8]
        self.fake.script(f"witness-{t}", Text(f"witness answer {t}"))
        t0 = time.monotonic()
        self.client.send_text(f"witness-{t}")
        ev = self.client.wait_type("response", "error", timeout=budget + 30)
        took = time.monotonic() - t0
        assert ev["type"] == "response" and t in ev.get("text", ""), ev
        assert took <= budget, f"witness turn took {took:.2f}s (budget {budget}s)"
        return took


@pytest.fixture(scope="module")
def witness(lab, fake_api):
    w = Witness(lab, fake_api)
    yield w
    w.client.close()


@pytest.fixture(autouse=True)
def still_serving(lab, witness):
    yield
    assert lab.alive(), f"labctrl died:\n{lab.log_tail()}"
    assert lab.http("GET", "/healthz", timeout=5)[0] == 200
    witness.turn()


def alice(lab) -> harness.WSClient:
    return harness.WSClient(lab.ws_url(TOKENS["alice"]))


def answered(c: harness.WSClient, budget: float = ANSWER_BUDGET) -> dict:
    """The first event (error or session_start), within `budget` seconds of now."""
    t0 = time.monotonic()
    ev = c.wait_for(lambda e: e.get("type") in ("error", "session_start"), timeout=budget + 20, what="an answer")
    took = time.monotonic() - t0
    assert took <= budget, f"answered after {took:.2f}s: {ev}"
    return ev


def refused_with(lab, send, code: int, needle: str = "") -> dict:
    c = alice(lab)
    try:
        try:
            send(c.ws)
        except (ConnectionClosed, OSError):
            pass  # the server may close while a big frame is still going out
        ev = answered(c)
        assert ev["type"] == "error", ev
        assert needle in ev["text"], ev
        c.wait_closed(timeout=10)
        assert c.close_code == code, (c.close_code, c.close_reason)
        assert not c.of_type("session_start")
        return ev
    finally:
        c.close()


# ---- handshakes -------------------------------------------------------------------------------


def test_oversize_handshake_is_refused_unparsed(lab):
    refused_with(lab, lambda ws: ws.send(json.dumps({"tool": "claude", "pad": "x" * 300_000})), 1009, "exceeds 262144 bytes")
    assert 'lab_protocol_violations_total{kind="handshake_too_large"}' in lab.metrics()


def test_100k_key_handshake_is_answered_quickly(lab):
    hs = {"tool": "claude", **{f"k{i}": i for i in range(100_000)}}
    refused_with(lab, lambda ws: ws.send(json.dumps(hs)), 1009, "exceeds")


def test_fragmented_oversize_handshake(lab):
    refused_with(lab, lambda ws: ws.send(['{"tool":"claude","pad":"'] + ["y" * 1000] * 300 + ['"}']), 1009, "exceeds")


def test_handshake_nested_100k_deep(lab):
    refused_with(lab, lambda ws: ws.send("[" * 100_000 + "]" * 100_000), 1000, "Invalid handshake")
    refused_with(lab, lambda ws: ws.send('{"a":' * 40_000 + "1" + "}" * 40_000), 1000, "Invalid handshake")


@pytest.mark.parametrize("frames", [
    [b'{"tool":"claude","folder":"\xff"}'],
    [b'{"tool":"claude","x":"\xed\xa0\x80"}'],          # a surrogate encoded in UTF-8 (CESU)
    [b'{"tool":"claude","x":"\xc0\xaf"}'],              # overlong
    [b'{"tool":"claude","x":"\xe2\x82', b'"}'],        # a character cut by a fragment boundary, never finished
], ids=["ff", "cesu-surrogate", "overlong", "split"])
def test_handshake_invalid_utf8_is_1007(frames, lab):
    refused_with(lab, lambda ws: ws.send(frames if len(frames) > 1 else frames[0], text=True), 1007, "UTF-8")
    assert 'lab_protocol_violations_total{kind="invalid_utf8"}' in lab.metrics()


def test_valid_utf8_split_across_fragments_is_fine(lab):
    c = alice(lab)
    try:
        raw = json.dumps({"tool": "claude", "session_id": "s-é€😀"}, ensure_ascii=False).encode()
        cut = raw.index("€".encode()) + 1  # inside the euro sign
        c.ws.send([raw[:cut], raw[cut:]], text=True)
        assert answered(c, budget=60)["type"] == "session_start"
    finally:
        c.close()


def test_lone_surrogate_escapes_get_an_answer(lab):
    for hs in ['{"tool":"claude","folder":"\\ud800"}', '{"tool":"claude","session_id":"\\udfff\\ud800"}']:
        c = alice(lab)
        try:
            c.ws.send(hs)
            answered(c, budget=60)  # error or session_start: either is an answer, not a crash
        finally:
            c.close()


def test_binary_handshake(lab):
    refused_with(lab, lambda ws: ws.send(b"\x00\x01\x02"), 1000, "first message must be a JSON text frame")


@pytest.mark.parametrize("value", ["1e300", "-1e300", "1e-300", str(2**64), "-9223372036854775809", "NaN"])
def test_numbers_in_handshake_id_fields(value, lab):
    c = alice(lab)
    try:
        c.ws.send('{"tool":"claude","session_id":%s,"claude_session_id":%s}' % (value, value))
        answered(c, budget=60)
    finally:
        c.close()


# ---- after session_start ------------------------------------------------------------------------


@pytest.fixture
def session(lab):
    c = alice(lab)
    c.send_json({"tool": "claude"})
    c.wait_type("session_start", timeout=90)
    yield c
    c.close()


def still_works(c: harness.WSClient, fake_api) -> None:
    t = uuid.uuid4().hex[:8]
    fake_api.script(f"alive-{t}", Text(f"still here {t}"))
    c.send_text(f"alive-{t}")
    c.wait_for(lambda e: e.get("type") == "response" and t in e.get("text", ""), timeout=90, what="alice's turn")


@pytest.mark.parametrize("rid", ["1e300", "-1e300", "1e-300", str(2**64), "-1e-300", "1.5", "-0", '"x"', "[]", "{}", "null"])
def test_permission_response_with_hostile_request_ids(session, rid, lab):
    session.send_text('{"type":"permission_response","request_id":%s,"behavior":"allow"}' % rid)
    # Nothing to answer; the controller must simply survive (checked by still_serving) and the session too.
    session.send_json({"type": "ping"})
    assert not session.closed
    assert lab.alive()


def test_session_survives_the_id_battery(session, fake_api):
    for rid in ["1e300", "-1e300", "1e-300", str(2**64)]:
        session.send_text('{"type":"permission_response","request_id":%s,"decision":"allow"}' % rid)
    still_works(session, fake_api)


def test_100k_key_prompt_object(session):
    """Many keys cost what their bytes cost (no quadratic object indexing): the answer takes no longer than a
    few times that of a `/cost` of the same size with one key, measured on the same session and machine load."""
    wide = {"type": "user_message", "content": "hi", **{f"k{i}": i for i in range(100_000)}}
    # `/cost` is answered by the worker itself: no agent turn competes with the one measured.
    flat = {"type": "user_message", "content": "/cost", "k": "x" * (len(json.dumps(wide)) - 40)}

    def answer_time(msg: dict) -> float:
        t0 = time.monotonic()
        session.send_json(msg)
        ev = session.wait_for(lambda e: e.get("type") in ("input_ack", "error"), timeout=60, what="an answer to the big prompt")
        assert ev["type"] == "input_ack", ev
        return time.monotonic() - t0

    session.forget_received()
    reference = answer_time(flat)
    elapsed = answer_time(wide)
    # Quadratic indexing of 100 000 keys is ~5e9 steps (minutes); linear is a few times the reference (the
    # object is re-encoded for the agent and echoed in the ack; a debug build under load: up to 10 s).
    assert elapsed <= 10 * reference + 10, (elapsed, reference)


def test_prompt_nested_100k_deep(session, lab):
    session.send_text("[" * 100_000 + "]" * 100_000)
    session.wait_for(lambda e: e.get("type") in ("input_ack", "error"), timeout=30, what="an answer to the deep prompt")


def test_huge_input_ack_is_not_parsed_by_the_controller(session, witness):
    # The worker acks with the whole text: the controller forwards it without parsing it on its loop.
    session.send_json({"type": "user_message", "content": "z" * (1 << 20)})
    ack = session.wait_type("input_ack", "error", timeout=30)
    assert ack["type"] == "input_ack"
    witness.turn()  # not slowed meanwhile


@pytest.mark.parametrize("frames", [[b'"\xff"'], [b'{"type":"user_message","content":"ok \xf4\x90\x80\x80"}'], [b'{"text":"\xe2', b'\x28"}']],
                         ids=["ff", "above-10ffff", "split"])
def test_prompt_invalid_utf8_fails_the_connection(session, frames, lab):
    key = 'lab_protocol_violations_total{kind="invalid_utf8"}'
    before = metric(lab, key)
    try:
        session.ws.send(frames if len(frames) > 1 else frames[0], text=True)
    except ConnectionClosed:
        pass  # the close may arrive while the last fragment is still going out
    session.wait_closed(timeout=10)
    assert session.close_code == 1007, (session.close_code, session.close_reason)
    assert any("UTF-8" in e.get("text", "") for e in session.of_type("error"))
    assert metric(lab, key) == before + 1  # failed by the controller, before it reached the worker


def metric(lab, prefix: str) -> float:
    for line in lab.metrics().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_binary_frame_after_session_start(session, fake_api):
    session.send_bytes(b"\x00" * 1000)
    session.send_bytes(b"\xff\xfe" * 100_000)
    # Whatever the worker makes of them (an error event, or nothing), the session still works.
    still_works(session, fake_api)
