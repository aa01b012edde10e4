"""Bad input gets ONE clear `error` event and a clean close, and the server keeps
serving the other sessions.

Each test opens a fresh connection, sends something bad, and reads until the server closes:
the events must be exactly `[error]` (no session_start, nothing else) and the close code 1000
(1009 for an oversize frame). Long-lived "witness" PTY sessions on the same servers must answer
before and after every test (fixture `witness_alive`), which proves that bad clients do not disturb
other sessions or crash the server.

Expectations follow relay-worker's documented behaviour (README, "Deliberate differences from ai-relay 0.4.46"); where the
reference ai-relay 0.4.46 behaves differently, the case is xfail for IMPL=reference only.
"""
from __future__ import annotations

import json
import os
import random
import re
import string
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from harness import WSClient, texts, xfail_on_reference

MAX_FRAME = 50 * 1024 * 1024  # 52,428,800 bytes


# ---- servers and witnesses ------------------------------------------------------------------


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """A workspace root with a real subfolder, and an outside folder reachable through a symlink."""
    base = Path(os.path.realpath(tmp_path_factory.mktemp("confine")))
    root = base / "root"
    (root / "inside").mkdir(parents=True)
    outside = base / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)           # root/escape → outside the root
    (root / "alias").symlink_to(root / "inside")     # a symlink that stays inside
    return {"root": root, "inside": root / "inside", "outside": outside, "base": base}


@pytest.fixture(scope="module")
def relay(relays):
    return relays.start(claude="fake")


@pytest.fixture(scope="module")
def rooted(relays, roots):
    return relays.start(claude="fake", workspace_root=roots["root"])


class Witness:
    """A long-lived generic PTY session that must keep answering."""

    def __init__(self, relay, folder: Path) -> None:
        self.relay = relay
        self.client = WSClient(relay.url, relay=relay)
        self.client.handshake({"tool": "generic", "folder": str(folder), "session_id": f"witness-{relay.port}"})
        self.n = 0

    def ping(self, timeout: float = 15.0) -> None:
        self.n += 1
        # Letters only: PTY output is classified by heuristics (digits like "429" become quota_warning).
        token = "witness-ping-" + "".join(random.choice(string.ascii_lowercase) for _ in range(10))
        self.client.send_json({"text": token})
        self.client.wait_for(lambda e: f"got: {token}" in texts(self.client.events), timeout,
                             what=f"witness echo of {token}")


@pytest.fixture(scope="module")
def witnesses(relay, rooted, roots, tmp_path_factory):
    w1 = Witness(relay, Path(os.path.realpath(tmp_path_factory.mktemp("witness"))))
    w2 = Witness(rooted, roots["inside"])
    yield [w1, w2]
    for w in (w1, w2):
        w.client.close()


@pytest.fixture(autouse=True)
def witness_alive(witnesses):
    for w in witnesses:
        w.ping()
    yield
    for w in witnesses:
        assert w.relay.alive(), f"the {w.relay.impl} server died:\n{w.relay.log_tail()}"
        w.ping()


# ---- helpers ---------------------------------------------------------------------------------


def rejected(relay, send, timeout: float = 20.0, close_codes=(1000,)) -> dict:
    """Open a connection, `send(client)`, read to the close; assert exactly one error event."""
    c = relay.connect()
    try:
        try:
            send(c)
        except (ConnectionClosed, OSError):  # the server may close while a big frame is still being sent
            pass
        first = c.wait_for(lambda e: True, timeout, what="an error event")  # fails if closed without one
        if first["type"] != "error":
            # Fail fast: a session that started would never close by itself.
            pytest.fail(f"expected one error event, got {first}", pytrace=False)
        events = c.wait_closed(timeout)
    finally:
        c.close()
    types = [e["type"] for e in events]
    assert types == ["error"], f"expected exactly one error event, got {types}: {events}"
    assert c.close_code in close_codes, (c.close_code, c.close_reason)
    err = events[0]
    assert isinstance(err.get("text"), str) and err["text"].strip(), err
    assert isinstance(err.get("ts"), (int, float)), err
    return err


def rejected_handshake(relay, handshake, **kw) -> dict:
    def send(c):
        c.send_text(handshake if isinstance(handshake, str) else json.dumps(handshake))
    return rejected(relay, send, **kw)


def accepted(relay, handshake) -> dict:
    """The handshake must start a session; returns session_start. The connection is closed after."""
    c = relay.connect()
    try:
        return c.handshake(handshake)
    finally:
        c.close()


# ---- malformed handshakes (both implementations) ---------------------------------------------


@pytest.mark.parametrize("frame", ['{"tool": "claude",', "hello there", "", "{'tool': 'claude'}", "{\"a\":1}}"],
                         ids=["truncated", "not-json", "empty", "python-dict", "trailing-garbage"])
def test_malformed_json(relay, frame):
    err = rejected_handshake(relay, frame)
    assert err["text"].startswith("Invalid handshake: "), err
    assert err["session_id"] == ""


@pytest.mark.parametrize("frame", ["[1, 2]", '"claude"', "42", "null", "true", "[]"])
def test_non_object_handshake(relay, frame):
    err = rejected_handshake(relay, frame)
    assert err["text"] == "Invalid handshake: handshake must be a JSON object"
    assert err["session_id"] == ""


def test_binary_first_frame(relay):
    err = rejected(relay, lambda c: c.send_bytes(b'{"tool": "claude"}'))
    assert err["text"] == "Invalid handshake: first message must be a JSON text frame"
    assert err["session_id"] == ""


@pytest.mark.parametrize("extra_args", ["--verbose", [1], ["ok", None], {"a": 1}],
                         ids=["string", "int-element", "null-element", "object"])
def test_extra_args_not_a_list_of_strings(relay, tmp_path, extra_args):
    err = rejected_handshake(relay, {"tool": "claude", "folder": str(tmp_path), "extra_args": extra_args})
    assert err["text"] == "Invalid handshake: extra_args must be a list of strings"
    assert err["session_id"] == ""


@pytest.mark.parametrize("arg", ["a b", "$(id)", "x;y", "--model=a/b", "", "é"])
def test_extra_args_disallowed_characters(relay, tmp_path, arg):
    err = rejected_handshake(relay, {"tool": "claude", "folder": str(tmp_path), "extra_args": [arg]})
    assert err["text"].startswith("Invalid handshake: extra_arg "), err
    assert "disallowed characters" in err["text"] or "not allowed" in err["text"], err


def test_missing_folder(relay, tmp_path):
    missing = tmp_path / "does-not-exist"
    err = rejected_handshake(relay, {"tool": "claude", "folder": str(missing), "session_id": "nofolder-1"})
    assert err["text"] == f"Working folder not found: {missing}"
    assert err["session_id"] == "nofolder-1"


def test_handshake_timeout(relay):
    """No first frame within 10 s → one error event, then a clean close (runs ~10 s, once)."""
    err = rejected(relay, lambda c: None, timeout=25)
    assert err["text"] == "Handshake timeout: first message must be session config JSON"
    assert err["session_id"] == ""


def test_disconnect_before_handshake(relay):
    c = relay.connect()
    c.close()  # nothing to assert on this connection; the witnesses prove the server is fine


# ---- wrong field types (relay-worker: a deliberate difference, README; the reference crashes with 1011) -----


@xfail_on_reference("a non-string tool/folder/model or a non-object env crashes the handler (1011, no event)")
@pytest.mark.parametrize("field,value", [
    ("tool", 5), ("tool", ["claude"]), ("tool", {"name": "claude"}),
    ("folder", 123), ("folder", ["/tmp"]),
    ("model", {"name": "sonnet"}), ("model", 7),
    ("env", "CLAUDE_X=1"), ("env", ["CLAUDE_X"]),
], ids=lambda v: json.dumps(v))
def test_wrong_field_types(relay, tmp_path, field, value):
    hs = {"tool": "claude", "folder": str(tmp_path)}
    hs[field] = value
    err = rejected_handshake(relay, hs)
    assert err["text"].startswith("Invalid handshake: "), err
    assert f"'{field}'" in err["text"], err
    assert err["session_id"] == ""


@xfail_on_reference("env values are stringified with Python str() instead of refused")
def test_env_value_not_scalar(relay, tmp_path):
    err = rejected_handshake(relay, {"tool": "claude", "folder": str(tmp_path), "env": {"CLAUDE_X": {"a": 1}}})
    assert "CLAUDE_X" in err["text"], err


# ---- oversize frames --------------------------------------------------------------------------


class RawWS:
    """A minimal client over a plain socket, for oversize frames: a library client would still be
    busy writing the payload when the server closes and report 1006 for a close it never read."""

    def __init__(self, port: int):
        import base64
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            assert chunk, "server closed during the upgrade"
            data += chunk
        head, self.buffer = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_header(self, opcode: int, length: int, payload: bytes = b"") -> None:
        """A masked frame header announcing `length` bytes (zero mask), then `payload`."""
        import struct

        if length < 126:
            hdr = bytes([0x80 | opcode, 0x80 | length])
        elif length < 65536:
            hdr = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", length)
        else:
            hdr = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", length)
        self.sock.sendall(hdr + b"\0\0\0\0" + payload)

    def send_text(self, text: str) -> None:
        data = text.encode()
        self.send_header(0x1, len(data), data)

    def next_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (servers do not mask)."""
        import struct

        def need(n: int) -> bytes:
            while len(self.buffer) < n:
                chunk = self.sock.recv(65536)
                assert chunk, "connection closed without a close frame"
                self.buffer += chunk
            out, self.buffer = self.buffer[:n], self.buffer[n:]
            return out

        b0, b1 = need(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", need(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", need(8))[0]
        return b0 & 0x0F, need(n)

    def close_code(self) -> int:
        """Reads frames until the close frame; returns its code."""
        import struct

        while True:
            opcode, payload = self.next_frame()
            if opcode == 0x8:
                return struct.unpack(">H", payload[:2])[0]

    def close(self) -> None:
        self.sock.close()


def test_oversize_first_frame(relay):
    """A frame whose header announces more than 50 MiB is refused from the header (close 1009)
    before its payload is read."""
    ws = RawWS(relay.port)
    try:
        ws.send_header(0x1, MAX_FRAME + 1, b"x" * 1024)
        assert ws.close_code() == 1009
    finally:
        ws.close()


def test_oversize_frame_after_handshake(relay, tmp_path):
    """The same in a running session: the oversize frame ends the session with 1009 and is not
    acknowledged."""
    ws = RawWS(relay.port)
    try:
        ws.send_text(json.dumps({"tool": "generic", "folder": str(tmp_path)}))
        while True:
            opcode, payload = ws.next_frame()
            if opcode == 0x1 and json.loads(payload)["type"] == "session_start":
                break
        ws.send_header(0x1, MAX_FRAME + 1, b"y" * 1024)
        seen = []
        import struct

        while True:
            opcode, payload = ws.next_frame()
            if opcode == 0x8:
                code = struct.unpack(">H", payload[:2])[0]
                break
            if opcode == 0x1:
                seen.append(json.loads(payload)["type"])
        assert code == 1009
        assert "input_ack" not in seen
    finally:
        ws.close()


def assert_refused_for_size(events, c) -> None:
    """Either the WebSocket layer refuses the frame (close 1009, no event), or one error about the
    size, then a close. (A handshake *timeout* here would mean the server spent >10 s swallowing
    the frame instead of refusing it from its header.)"""
    types = [e["type"] for e in events]
    assert types in ([], ["error"]), (types, c.close_code, c.close_reason)
    if types:
        assert re.search(r"too (large|big)|limit|size", events[0]["text"], re.I), events[0]
        assert "timeout" not in events[0]["text"].lower(), events[0]
    assert c.close_code == 1009 or (types and c.close_code == 1000), (c.close_code, c.close_reason)


def test_oversize_compressed_frame(relay):
    """A small deflate-compressed frame that inflates beyond 50 MiB must be refused as well."""
    big = '{"tool": "generic", "pad": "' + "x" * (MAX_FRAME + 1) + '"}'
    c = relay.connect(compression="deflate")
    try:
        if not c.ws.protocol.extensions:
            pytest.skip("the server does not negotiate permessage-deflate (nothing to inflate)")
        try:
            c.send_text(big)
        except Exception:
            pass
        events = c.wait_closed(30)
    finally:
        c.close()
    assert_refused_for_size(events, c)


def test_message_of_exactly_50_mib_is_accepted(relay, tmp_path):
    """The cap is 50 MiB inclusive: a message of exactly 52,428,800 bytes (e.g. a user_message carrying
    images) is accepted and acked; the session goes on."""
    c = relay.connect()
    try:
        c.handshake({"tool": "generic", "folder": str(tmp_path)})
        head, tail = '{"type": "user_message", "content": "', '"}'
        frame = head + "x" * (MAX_FRAME - len(head) - len(tail)) + tail
        assert len(frame.encode()) == MAX_FRAME
        c.send_text(frame)
        ack = c.wait_type("input_ack", timeout=90)
        assert ack["text"] == "user_message"
        c.send_json({"text": "after the big one"})
        c.wait_for(lambda e: "got: after the big one" in texts(c.events, "stdout"), 30, what="echo")
        assert not c.closed
    finally:
        c.close()


# ---- unknown tool, forbidden env / args / mcp (relay-worker only) ------------------------------


@xfail_on_reference("an unknown tool silently runs the `generic` PTY executable")
def test_unknown_tool(relay, tmp_path):
    err = rejected_handshake(relay, {"tool": "aider", "folder": str(tmp_path)})
    assert err["text"] == "Invalid handshake: unknown tool 'aider'"
    assert err["session_id"] == ""


@xfail_on_reference("forbidden env keys are dropped silently (or admitted: NODE_OPTIONS, *_BASE_URL, PATH, HOME)")
@pytest.mark.parametrize("key,value", [
    ("NODE_OPTIONS", "--require /tmp/evil.js"),
    ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/steal"),
    ("OPENAI_BASE_URL", "http://127.0.0.1:9/steal"),
    ("GOOGLE_API_BASE", "http://127.0.0.1:9/"),
    ("CLAUDE_ENDPOINT", "http://127.0.0.1:9/"),
    ("LD_PRELOAD", "/tmp/evil.so"),
    ("PATH", "/tmp/evil"),
    ("HOME", "/tmp/evil-home"),
    ("AI_RELAY_TRANSCRIPT_ROTATE_BYTES", "1"),
    ("SOME_RANDOM_KEY", "x"),
])
def test_forbidden_env(relay, tmp_path, key, value):
    err = rejected_handshake(relay, {"tool": "claude", "folder": str(tmp_path), "env": {key: value},
                                     "session_id": f"env-{key}"})
    assert key in err["text"], err
    assert "Command not found" not in err["text"], err  # refused for the env, not by accident


def test_allowed_env_is_accepted(relay, tmp_path):
    start = accepted(relay, {"tool": "claude", "folder": str(tmp_path),
                             "env": {"CLAUDE_CODE_SOMETHING": "1", "ANTHROPIC_MODEL": "x", "LANG": "C.UTF-8"}})
    assert start["metadata"]["tool"] == "claude"


@xfail_on_reference("any flag passes the extra_args pattern (and 'abc\\n' passes the $ anchor)")
@pytest.mark.parametrize("args", [
    ["--dangerously-skip-permissions"],
    ["--permission-mode=bypassPermissions"],
    ["--permission-mode", "bypassPermissions"],
    ["--add-dir=.."],
    ["--mcp-config=x.json"],
    ["--max-turns", "5", "--allowedTools=Bash"],
    ["abc\n"],
], ids=lambda a: " ".join(a).replace("\n", "\\n"))
def test_forbidden_extra_args(relay, tmp_path, args):
    err = rejected_handshake(relay, {"tool": "claude", "folder": str(tmp_path), "extra_args": args})
    assert err["text"].startswith("Invalid handshake: extra_arg "), err


def test_allowed_extra_args(relay, tmp_path):
    start = accepted(relay, {"tool": "claude", "folder": str(tmp_path), "extra_args": ["--max-turns", "5"]})
    assert start["metadata"]["cmd"][-2:] == ["--max-turns", "5"]


@xfail_on_reference("mcp_config from the client is written to a temp file and passed to claude")
def test_mcp_config_refused(relay, tmp_path):
    err = rejected_handshake(relay, {"tool": "claude", "folder": str(tmp_path),
                                     "mcp_config": {"mcpServers": {"x": {"command": "sh", "args": ["-c", "id"]}}}})
    assert "mcp_config" in err["text"], err


# ---- path confinement with --workspace-root ----------------------------------------------------


def test_folder_outside_root(rooted, roots):
    err = rejected_handshake(rooted, {"tool": "claude", "folder": str(roots["outside"]), "session_id": "esc-1"})
    assert err["text"].startswith("Folder '") and "is outside the permitted workspace root" in err["text"], err
    assert err["session_id"] == "esc-1"


def test_dotdot_escape(rooted, roots):
    folder = f"{roots['root']}/inside/../../outside"
    err = rejected_handshake(rooted, {"tool": "claude", "folder": folder, "session_id": "esc-2"})
    assert "is outside the permitted workspace root" in err["text"], err


def test_sibling_prefix_is_not_inside(rooted, roots):
    """'/x/root-evil' starts with the string '/x/root' but is not inside it."""
    sibling = roots["base"] / "root-evil"
    sibling.mkdir(exist_ok=True)
    err = rejected_handshake(rooted, {"tool": "claude", "folder": str(sibling), "session_id": "esc-3"})
    assert "is outside the permitted workspace root" in err["text"], err


@xfail_on_reference("the root check is lexical: a symlink inside the root escapes it")
def test_symlink_escape(rooted, roots):
    err = rejected_handshake(rooted, {"tool": "claude", "folder": str(roots["root"] / "escape"), "session_id": "esc-4"})
    assert "is outside the permitted workspace root" in err["text"], err
    assert err["session_id"] == "esc-4"


def test_folder_inside_root_is_accepted(rooted, roots):
    start = accepted(rooted, {"tool": "claude", "folder": str(roots["inside"])})
    assert start["metadata"]["folder"] == str(roots["inside"])


def test_symlink_inside_root_is_accepted(rooted, roots):
    start = accepted(rooted, {"tool": "claude", "folder": str(roots["root"] / "alias")})
    assert start["type"] == "session_start"


@xfail_on_reference("the root itself is rejected (string prefix '<root>/')")
def test_root_itself_is_accepted(rooted, roots):
    start = accepted(rooted, {"tool": "claude", "folder": str(roots["root"])})
    assert start["type"] == "session_start"


@xfail_on_reference("a relative folder is resolved against the relay's cwd, not the root")
def test_relative_folder_resolved_against_root(rooted, roots):
    start = accepted(rooted, {"tool": "claude", "folder": "inside"})
    assert start["metadata"]["folder"] == str(roots["inside"])


# ---- bad messages after the handshake do not kill a session ------------------------------------


@pytest.mark.parametrize("tool", ["generic", "claude"])
def test_garbage_after_handshake_keeps_session(relay, tmp_path, tool):
    c = relay.connect()
    try:
        c.handshake({"tool": tool, "folder": str(tmp_path)})
        for frame in ["[1, 2]", "null", "42", '{"type": 7}', '{"text": 5}', '{"text": {"a": 1}}',
                      '{"type": "permission_response"}', '{"type": "permission_response", "request_id": null}',
                      '{"type": "control_response", "response": 5}', '{"type": "ping"}', "{broken json"]:
            c.send_text(frame)
        c.send_bytes(b"\xff\x00 binary after handshake")
        if tool == "generic":
            c.send_json({"text": "alive-check"})
            c.wait_for(lambda e: "got: alive-check" in texts(c.events, "stdout"), 15, what="echo")
        else:
            c.send_json({"text": "alive-check please"})
            c.wait_for(lambda e: e["type"] == "response" and e.get("text") == "Echo: alive-check please", 30,
                       what="fake claude's answer")
        assert not c.closed
        assert not [e for e in c.events if e["type"] == "error" and e.get("session_id") == ""], c.events
    finally:
        c.close()


@xfail_on_reference("set_model with a non-string model raises in the handler (1011)")
def test_bad_control_messages_keep_claude_session(relay, tmp_path):
    c = relay.connect()
    try:
        c.handshake({"tool": "claude", "folder": str(tmp_path)})
        for msg in [{"type": "set_model", "model": 5}, {"type": "set_permission_mode", "mode": ["x"]},
                    {"type": "interrupt"}, {"type": "permission_response", "request_id": 0, "behavior": "allow"},
                    {"type": "user_message", "content": {"weird": True}}]:
            c.send_json(msg)
        c.send_json({"text": "still answering"})
        c.wait_for(lambda e: e["type"] == "response" and e.get("text") == "Echo: still answering", 30,
                   what="fake claude's answer")
        assert not c.closed
    finally:
        c.close()


# ---- hostile frames straight at a worker -------------------------------------------------------
#
# Each hostile frame gets an `error` event or a clean close (or, where documented, is an ordinary
# message), and after each one a witness session of another client on the same worker completes a
# fake-claude turn within WITNESS_TURN seconds.

WITNESS_TURN = 2.0
HOSTILE_WAIT = 10.0


class TurnWitness:
    """Another client's fake-claude session: one prompt, one `response`."""

    def __init__(self, relay, folder: Path) -> None:
        self.client = WSClient(relay.url, relay=relay)
        self.client.handshake({"tool": "claude", "folder": str(folder), "session_id": f"turn-witness-{relay.port}"})
        self.n = 0
        self.turn(timeout=30)  # the first turn starts the CLI

    def turn(self, timeout: float = WITNESS_TURN) -> float:
        import time
        self.n += 1
        # Digits only after the prefix: the fake claude reacts to words like "tool" or "slow".
        token = f"witness {self.n} {random.randrange(10**9)}"
        start = time.monotonic()
        self.client.send_json({"text": token})
        self.client.wait_for(lambda e: e["type"] == "response" and e.get("text") == f"Echo: {token}", timeout,
                             what=f"witness turn {token!r} within {timeout}s")
        return time.monotonic() - start


@pytest.fixture(scope="module")
def turn_witness(relay, tmp_path_factory):
    w = TurnWitness(relay, Path(os.path.realpath(tmp_path_factory.mktemp("turn-witness"))))
    yield w
    w.client.close()


@pytest.fixture
def witness_turn(turn_witness, relay):
    """After the test: the worker is alive and the witness completes a turn within 2 s."""
    yield turn_witness
    assert relay.alive(), f"the worker died:\n{relay.log_tail()}"
    turn_witness.turn()


def claude_session(relay, folder: Path) -> WSClient:
    c = relay.connect()
    c.handshake({"tool": "claude", "folder": str(folder)})
    return c


def answers_prompt(c: WSClient, text: str = "still here") -> None:
    c.send_json({"text": text})
    c.wait_for(lambda e: e["type"] == "response" and e.get("text") == f"Echo: {text}", HOSTILE_WAIT,
               what="the hostile session's own answer")


def next_error(c: WSClient) -> dict:
    return c.wait_for(lambda e: e["type"] == "error", HOSTILE_WAIT, what="an error event")


def big_object(n: int = 100_000, prefix: str = "k") -> str:
    """The JSON text of an object of n distinct keys (≈1.3 MB for 100 k)."""
    return "{" + ",".join(f'"{prefix}{i}":{i}' for i in range(n)) + "}"


# Ids the worker cannot use as a request id (not a string or a whole number within ±9e15).
UNUSABLE_IDS = ["1e300", "-1e300", "1e-300", "9007199254740993.0", "18446744073709551616", "-18446744073709551616", "1.5", "true",
                "[]", "{}", '""', "null"]
# Numbers that are not exactly representable, and non-JSON literals: the frame is not JSON.
UNPARSEABLE_IDS = ["18446744073709551617", "1e400", "-1e400", "NaN", "-Infinity", "0x10", "01"]


@pytest.mark.parametrize("field", ["request_id", "id"])
@pytest.mark.parametrize("value", UNUSABLE_IDS)
def test_hostile_permission_ids_get_an_error(relay, tmp_path, witness_turn, field, value):
    c = claude_session(relay, tmp_path)
    try:
        c.send_text(f'{{"type":"permission_response","{field}":{value},"behavior":"allow"}}')
        err = next_error(c)
        assert err["text"] == "permission_response needs a 'request_id': a string or an integer", err
        answers_prompt(c)
    finally:
        c.close()


def answer_with_id(relay, tmp_path, value: str, error_prefix: str) -> WSClient:
    """Sends a permission answer whose `request_id` is the JSON text `value` into a Claude session:
    exactly one `error` starting with `error_prefix` comes back and the session still answers prompts."""
    c = claude_session(relay, tmp_path)
    try:
        c.send_text(f'{{"type":"permission_response","request_id":{value},"behavior":"allow"}}')
        err = next_error(c)
        assert err["text"].startswith(error_prefix), err
        answers_prompt(c)
        assert len(c.of_type("error")) == 1, c.events
        return c
    finally:
        c.close()


@pytest.mark.parametrize("value", UNPARSEABLE_IDS)
def test_unparseable_numbers_get_an_error_not_a_prompt(relay, tmp_path, witness_turn, value):
    c = answer_with_id(relay, tmp_path, value, "Invalid JSON message: ")
    assert not c.of_type("input_ack")[:-1], "the broken frame must not become a prompt"


@xfail_on_reference("an answer to no pending request is dropped silently")
@pytest.mark.parametrize("value", ["-0.0", "-0", '"NaN"', '"1e300"', "4.0e3"])
def test_well_formed_unknown_ids_get_an_error(relay, tmp_path, witness_turn, value):
    """A usable id that names no pending request gets one `error` event (it is not sent to the agent);
    the session goes on."""
    answer_with_id(relay, tmp_path, value, "No pending permission request with id")


@pytest.mark.parametrize("field", ["session_id", "claude_session_id", "folder", "tool", "model"])
@pytest.mark.parametrize("value", ["1e300", "-1e300", "1e-300", "18446744073709551616"])
def test_hostile_numbers_in_handshake_ids(relay, tmp_path, witness_turn, field, value):
    hs = json.dumps({"tool": "claude", "folder": str(tmp_path)})[:-1] + f', "{field}": {value}}}'
    err = rejected_handshake(relay, hs)
    assert err["text"] == f"Invalid handshake: '{field}' must be a string", err


@pytest.mark.parametrize("value", ["18446744073709551617", "1e400", "NaN"])
def test_unparseable_numbers_in_handshake(relay, tmp_path, witness_turn, value):
    hs = json.dumps({"tool": "claude", "folder": str(tmp_path)})[:-1] + f', "session_id": {value}}}'
    err = rejected_handshake(relay, hs)
    assert err["text"].startswith("Invalid handshake: "), err


def test_hundred_thousand_key_handshake_is_answered_fast(relay, tmp_path, turn_witness):
    """A 100 k-key handshake is answered within 2 s — refused, since it is over the 256 KiB handshake cap
    (`--max-handshake-bytes`) — and a witness turn sent right after it is not slowed beyond 2 s."""
    import time
    frame = json.dumps({"tool": "claude", "folder": str(tmp_path)})[:-1] + "," + big_object()[1:]
    assert len(frame) > 1_000_000
    c = relay.connect()
    try:
        start = time.monotonic()
        c.send_text(frame)
        took = turn_witness.turn()
        st = c.wait_for(lambda e: True, WITNESS_TURN, what="the answer to the 100 k-key handshake")
        assert st["type"] == "error" and "too large" in st["text"], st
        assert time.monotonic() - start < WITNESS_TURN + took
        c.wait_closed(WITNESS_TURN)
        assert c.close_code == 1009, c.close_code
    finally:
        c.close()


def test_hundred_thousand_key_env_is_refused_fast(relay, tmp_path, witness_turn):
    import time
    frame = json.dumps({"tool": "claude", "folder": str(tmp_path)})[:-1] + ', "env": ' + big_object(prefix="K") + "}"
    start = time.monotonic()
    err = rejected_handshake(relay, frame, timeout=WITNESS_TURN, close_codes=(1009,))
    assert time.monotonic() - start < WITNESS_TURN
    assert "too large" in err["text"], err


@pytest.mark.parametrize("shape", ["content", "pad", "text"])
def test_hundred_thousand_key_prompt_is_answered_fast(relay, tmp_path, turn_witness, shape):
    import time
    obj = big_object()
    frame = {"content": '{"type":"user_message","content":' + obj + "}",
             "pad": '{"type":"user_message","content":"big pad","pad":' + obj + "}",
             "text": '{"text":' + obj + "}"}[shape]
    c = claude_session(relay, tmp_path)
    try:
        # The same number of bytes in one string, as a `/cost` the relay answers itself (no agent turn): what
        # parsing costs when keys do not matter.
        flat = '{"type":"user_message","content":"/cost","pad":"' + "x" * (len(frame) - 48) + '"}'
        start = time.monotonic()
        c.send_text(flat)
        c.wait_type("input_ack", timeout=60)
        reference = time.monotonic() - start
        start = time.monotonic()
        c.send_text(frame)
        took = turn_witness.turn()
        assert took < WITNESS_TURN
        c.wait_type("input_ack", timeout=60)
        # Quadratic key handling of 100 000 keys takes minutes; linear takes a few times the reference (an
        # object is re-encoded for the agent and echoed in the ack; a debug build under load: up to 10 s).
        assert time.monotonic() - start < 10 * reference + 10, reference
        answers_prompt(c)
    finally:
        c.close()


def test_deep_nesting(relay, tmp_path, witness_turn):
    # 40 000 levels (240 KB) stays under the 256 KiB handshake cap, so the parser's depth cap answers.
    deep = '{"a":' * 40_000 + "1" + "}" * 40_000
    err = rejected_handshake(relay, deep)
    assert err["text"] == "Invalid handshake: Nesting too deep", err
    c = claude_session(relay, tmp_path)
    try:
        c.send_text('{"type":"user_message","content":' + "[" * 100_000 + "]" * 100_000 + "}")
        assert next_error(c)["text"] == "Invalid JSON message: Nesting too deep at offset 544", c.events
        answers_prompt(c)
    finally:
        c.close()


def test_lone_surrogates_become_replacement_characters(relay, tmp_path, witness_turn):
    c = relay.connect()
    try:
        st = c.handshake(json.loads('{"tool": "claude", "folder": "%s", "session_id": "a\\ud800b"}' % tmp_path))
        assert st["session_id"] == "a\ufffdb", st
        c.send_text('{"text": "lone \\udc00 and \\ud800\\u0041 pair \\ud83d\\ude00"}')
        c.wait_for(lambda e: e["type"] == "response" and e.get("text") == "Echo: lone \ufffd and \ufffdA pair \U0001F600",
                   HOSTILE_WAIT, what="the answer with replacement characters")
    finally:
        c.close()


def raw_events_until_close(ws: "RawWS") -> tuple[list[dict], int]:
    import struct
    events = []
    while True:
        opcode, payload = ws.next_frame()
        if opcode == 0x8:
            return events, struct.unpack(">H", payload[:2])[0]
        if opcode == 0x1:
            events.append(json.loads(payload))


@pytest.mark.parametrize("payload", [b'{"tool": "claude", "folder": "\xff"}', b'{"text": "\xc0\xaf"}',
                                     b'{"text": "\xed\xa0\x80"}', b"\xe2\x82"],
                         ids=["ff", "overlong", "encoded-surrogate", "truncated"])
def test_invalid_utf8_text_frame_is_1007(relay, tmp_path, witness_turn, payload):
    """RFC 6455 §8.1: invalid UTF-8 in a text message fails the connection with 1007, as the first
    frame and inside a session (after one `error` event)."""
    ws = RawWS(relay.port)
    try:
        ws.send_header(0x1, len(payload), payload)
        events, code = raw_events_until_close(ws)
        assert code == 1007, (code, events)
        assert [e["type"] for e in events] in ([], ["error"]), events
    finally:
        ws.close()
    ws = RawWS(relay.port)
    try:
        ws.send_text(json.dumps({"tool": "generic", "folder": str(tmp_path)}))
        opcode, first = ws.next_frame()
        assert json.loads(first)["type"] == "session_start"
        ws.send_header(0x1, len(payload), payload)
        events, code = raw_events_until_close(ws)
        assert code == 1007, (code, events)
        assert [e for e in events if e["type"] == "error"][-1]["text"] == "Invalid UTF-8 in a text frame", events
        assert "input_ack" not in [e["type"] for e in events]
    finally:
        ws.close()


@xfail_on_reference("binary frames after the handshake are dropped silently")
def test_binary_frames_in_a_session_get_an_error(relay, tmp_path, witness_turn):
    c = claude_session(relay, tmp_path)
    try:
        frames = [b"", b"\x00" * 70_000, b'{"type":"permission_response","request_id":1e300}', os.urandom(4096)]
        for data in frames:
            c.send_bytes(data)
        answers_prompt(c)
        assert not c.of_type("input_ack")[:-1], c.events
        errors = [e for e in c.events if e["type"] == "error" and "Binary frames" in e.get("text", "")]
        assert len(errors) == len(frames), c.events
    finally:
        c.close()


# ---- Cortex settings from hostile handshakes ----------------------------------------------------


@pytest.fixture(scope="module")
def cortex_relay(relays):
    # The timeout is checked before any request: the allowed origin needs no server.
    return relays.start(claude="fake", env={"SNOWFLAKE_PAT": "pat"},
                        worker_args=["--cortex-allowed-origin", "http://127.0.0.1:9"])


@pytest.mark.parametrize("timeout", ["nan", "NaN", "inf", "-inf", "1e999", 1e300, -1, 0, 0.5, 3601, "soon", True, [5], {"s": 5}],
                         ids=str)
def test_cortex_timeout_is_checked(cortex_relay, tmp_path, tmp_path_factory, timeout):
    c = cortex_relay.connect()
    try:
        c.handshake({"tool": "cortex", "folder": str(tmp_path),
                     "snowflake": {"account_url": "http://127.0.0.1:9", "timeout": timeout}})
        events = c.wait_closed(HOSTILE_WAIT)
    finally:
        c.close()
    assert [e["type"] for e in events] == ["session_start", "error"], events
    assert events[1]["text"] == "Snowflake Cortex: 'timeout' must be a number of seconds from 1 to 3600", events
    w = cortex_witness(cortex_relay, tmp_path_factory)
    assert cortex_relay.alive(), cortex_relay.log_tail()
    w.turn()


_CORTEX_WITNESS: dict = {}


def cortex_witness(relay, tmp_path_factory) -> TurnWitness:
    if relay.port not in _CORTEX_WITNESS:
        _CORTEX_WITNESS[relay.port] = TurnWitness(relay, Path(os.path.realpath(tmp_path_factory.mktemp("cw"))))
    return _CORTEX_WITNESS[relay.port]
