"""The generic PTY adapter with a real PTY and the fake terminal tool `generic`.

What must hold: ANSI escape sequences are stripped from output events, input is typed with a
CR (not LF), output arrives as events, the exit code reaches `session_end`, and the child is
reaped (SIGTERM, then SIGKILL after the grace period) when the client goes away.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import kill_if_alive, pid_state, texts, wait_until

OUTPUT_TYPES = ("stdout", "reasoning", "tool_call", "file_diff", "quota_warning", "context_warning",
                "context_compacted", "stderr")


@pytest.fixture(scope="module")
def relay(relays):
    return relays.start(claude="fake")


def start_generic(clients, relay, folder: Path, **extra):
    c = clients(relay)
    start = c.handshake({"tool": "generic", "folder": str(folder), **extra})
    return c, start


def output_text(c) -> str:
    return texts(c.events, *OUTPUT_TYPES)


def wait_output(c, needle: str, timeout: float = 15.0) -> None:
    c.wait_for(lambda e: needle in output_text(c), timeout, what=f"output containing {needle!r}")


def read_pid(folder: Path, timeout: float = 10.0) -> int:
    pidfile = folder / "generic.pid"
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit(), timeout), "no generic.pid"
    return int(pidfile.read_text().strip())


def test_session_start_metadata(relay, clients, workdir):
    c, start = start_generic(clients, relay, workdir, model="m1", session_id="pty-meta-1")
    assert start["session_id"] == "pty-meta-1"
    md = start["metadata"]
    assert md["tool"] == "generic"
    assert md["folder"] == str(workdir)
    assert md["model"] == "m1"
    assert md["cmd"] == ["generic", "--model", "m1"]
    assert md["workspace_id"] == "pty-meta-1"
    wait_output(c, "args=--model m1")


def test_ansi_stripped_and_echo(relay, clients, workdir):
    c, _ = start_generic(clients, relay, workdir)
    wait_output(c, "generic>")
    c.send_json({"text": "hello world"})
    ack = c.wait_type("input_ack")
    assert ack["text"] == "hello world"
    wait_output(c, "got: hello world")
    out = output_text(c)
    # No escape sequence survives (colours, OSC title, cursor moves), and no CR.
    for ev in c.events:
        t = ev.get("text")
        if isinstance(t, str):
            assert "\x1b" not in t, ev
            assert "\r" not in t, ev
            assert "\x07" not in t, ev
    assert "generic ready" in out
    assert "generic tool" not in out  # the OSC window title is not text
    # Cursor-forward (ESC[1C) becomes a space: "generic>" is followed by a space, not by "[1C".
    assert "[1C" not in out and "[0m" not in out and "[31m" not in out
    assert re.search(r"generic> ", out), out
    # Plain text frames (non-JSON) are input too.
    c.send_text("plain frame")
    wait_output(c, "got: plain frame")


def test_input_is_typed_with_cr(relay, clients, workdir):
    c, _ = start_generic(clients, relay, workdir)
    wait_output(c, "generic>")
    c.send_json({"text": "raw"})
    wait_output(c, "raw-ready")
    # Trailing CR/LF are removed and exactly one CR is appended.
    c.send_json({"text": "abc\n\n"})
    wait_output(c, "raw-bytes:")
    m = re.search(r"raw-bytes: (b'[^']*')", output_text(c))
    assert m, output_text(c)
    assert m.group(1) == "b'abc\\r'", output_text(c)


def test_exit_code_in_session_end(relay, clients, workdir):
    c, _ = start_generic(clients, relay, workdir)
    wait_output(c, "generic>")
    c.send_json({"text": "exit 3"})
    end = c.wait_type("session_end", timeout=15)
    assert end["exit_code"] == 3
    events = c.wait_closed(timeout=10)
    assert c.close_code == 1000, (c.close_code, c.close_reason)
    assert events[-1]["type"] == "session_end"
    assert [e["type"] for e in events].count("session_end") == 1


def test_exit_zero(relay, clients, workdir):
    c, _ = start_generic(clients, relay, workdir)
    wait_output(c, "generic>")
    c.send_text("exit 0")
    end = c.wait_type("session_end", timeout=15)
    assert end["exit_code"] == 0


def test_non_text_messages_are_harmless(relay, clients, workdir):
    """Content-only / control messages are not typed into the terminal, and do not end the session."""
    c, _ = start_generic(clients, relay, workdir)
    wait_output(c, "generic>")
    c.send_json({"type": "interrupt"})
    c.send_json({"type": "ping"})
    c.send_json({"type": "permission_response", "request_id": "x", "behavior": "allow"})
    c.send_bytes(b"\x00\x01binary")
    c.send_json({"text": "still here"})
    wait_output(c, "got: still here")
    # Acks: none for interrupt/ping/permission_response, one for the text.
    acks = [e.get("text") for e in c.of_type("input_ack")]
    assert acks == ["still here"], acks


def test_child_reaped_when_client_disconnects(relay, clients, workdir):
    c, _ = start_generic(clients, relay, workdir)
    wait_output(c, "generic>")
    pid = read_pid(workdir)
    assert pid_state(pid) not in (None, "Z")
    c.close()
    try:
        gone = wait_until(lambda: pid_state(pid) is None, timeout=10)
        assert gone, f"child {pid} still exists after the client closed (state {pid_state(pid)})"
    finally:
        kill_if_alive(pid)


def test_stubborn_child_killed_after_grace(relay, clients, workdir):
    """A child that ignores SIGTERM/SIGHUP is SIGKILLed after the 5 s grace, and reaped (no zombie)."""
    c, _ = start_generic(clients, relay, workdir)
    wait_output(c, "generic>")
    pid = read_pid(workdir)
    c.send_json({"text": "stubborn"})
    wait_output(c, "stubborn now")
    c.close()
    try:
        gone = wait_until(lambda: pid_state(pid) is None, timeout=12)
        assert gone, f"child {pid} survived (state {pid_state(pid)}): not killed or not reaped"
    finally:
        kill_if_alive(pid)
    assert relay.alive()
