"""Issue 2, item 3: bad input gets ONE clear `error` event and a clean close, and the server keeps
serving the other sessions.

Each test opens a fresh connection, sends something bad, and reads until the server closes:
the events must be exactly `[error]` (no session_start, nothing else) and the close code 1000
(1009 for an oversize frame). Long-lived "witness" PTY sessions on the same servers must answer
before and after every test (fixture `witness_alive`), which proves that bad clients do not disturb
other sessions or crash the server.

Expectations follow relay-worker's documented behaviour (WORKER_DIFFERENCES.md); where the
reference ai-relay 0.4.46 behaves differently (spec §11), the case is xfail for IMPL=reference only.
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

MAX_FRAME = 50 * 1024 * 1024  # 52,428,800 bytes (spec §1.2)


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


# ---- wrong field types (relay-worker: WORKER_DIFFERENCES 1; the reference crashes with 1011) -----


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


@xfail_on_reference("the root check is lexical: a symlink inside the root escapes it (spec §11.2)")
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
