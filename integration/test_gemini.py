"""The gemini adapter against fakes/fake_gemini.py, a protocol-faithful ACP
agent (the Gemini CLI itself is npm-only and cannot run here).

Covered: the ACP start sequence and a text turn; a permission round trip (integer id 0, allow,
deny, explicit optionId, the nested outcome); a turn that fails (JSON-RPC error); the CLI crashing
mid-turn and exiting after a turn — the WebSocket session survives and the next prompt reloads the
same ACP session; interrupt as a `session/cancel` notification (also while a permission is
pending); set_model; reconnecting with the saved `.gemini_acp_session`; one prompt at a time;
agent→client requests get an answer; the auth helper's settings.json and OAuth refresh (endpoint
on loopback).
"""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness import FAKES_DIR, IMPL, install_script, xfail_on_reference

TURN_TIMEOUT = 30.0
BASE_CMD = ["gemini", "--acp", "--output-format", "stream-json"]


@pytest.fixture(scope="module")
def gemini_bin(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gemini-bin")
    install_script(FAKES_DIR / "fake_gemini.py", d, "gemini")
    return d


@pytest.fixture(scope="module")
def relay(relays, gemini_bin):
    return relays.start(env={"FAKE_GEMINI_LOG": "cwd"}, path_dirs=[gemini_bin])


def tag() -> str:
    return uuid.uuid4().hex[:8]


def is_turn_end(e: dict) -> bool:
    """The answer to session/prompt: `response` with text "" (raw = the JSON-RPC answer) or `error`."""
    raw = e.get("raw")
    if e.get("type") == "response" and e.get("text") == "" and isinstance(raw, dict) and "result" in raw:
        return True
    return e.get("type") == "error"


def stdin_lines(folder: Path) -> list[dict]:
    log = folder / ".fake-gemini.log"
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if "stdin" in entry:
            out.append(json.loads(entry["stdin"]))
    return out


def argvs(folder: Path) -> list[list[str]]:
    log = folder / ".fake-gemini.log"
    return [json.loads(l)["argv"] for l in log.read_text().splitlines() if "argv" in json.loads(l)]


def start_gemini(clients, relay, folder: Path, **extra):
    c = clients(relay)
    start = c.handshake({"tool": "gemini", "folder": str(folder), **extra})
    return c, start


def run_turn(c, prompt: str) -> dict:
    c.send_json({"text": prompt})
    return c.wait_for(is_turn_end, TURN_TIMEOUT, what=f"end of the turn {prompt!r}")


def said(c, after: int = 0) -> str:
    return "".join(e.get("text") or "" for e in c.events[after:] if e["type"] == "assistant_message")


# ---- start and text turn -------------------------------------------------------------------


def test_start_sequence_and_text_turn(relay, clients, workdir):
    t = tag()
    c, start = start_gemini(clients, relay, workdir, model="gemini-test")
    assert start["metadata"]["cmd"] == BASE_CMD + ["--model", "gemini-test"]
    prompt = f"hello there [{t}]"
    end = run_turn(c, prompt)
    assert end["type"] == "response" and end["raw"]["result"] == {"stopReason": "end_turn"}
    assert end["raw"]["jsonrpc"] == "2.0"
    reasoning = c.of_type("reasoning")
    assert reasoning and reasoning[0]["text"] == f"Thinking about: {prompt}"
    assert reasoning[0]["raw"]["sessionUpdate"] == "agent_thought_chunk"
    assert said(c) == f"Echo: {prompt}"
    assert [a["text"] for a in c.of_type("input_ack")] == [prompt]

    lines = stdin_lines(workdir)
    init, new, prompt_req = lines[0], lines[1], lines[2]
    assert init == {"jsonrpc": "2.0", "method": "initialize", "params": {
        "protocolVersion": 1, "clientInfo": {"name": "ai-relay", "version": "0"},
        "clientCapabilities": {"auth": {"terminal": False}, "fs": {"readTextFile": False, "writeTextFile": False},
                               "terminal": False}}, "id": 1}
    assert new["method"] == "session/new" and new["params"] == {"cwd": str(workdir), "mcpServers": []}
    saved = (workdir / ".gemini_acp_session").read_text()
    assert saved.startswith("gs-")
    assert prompt_req["method"] == "session/prompt"
    assert prompt_req["params"]["prompt"] == [{"type": "text", "text": prompt}]
    assert prompt_req["params"]["sessionId"] == saved
    uuid.UUID(prompt_req["params"]["messageId"])


def test_structured_content_and_images(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    c.send_json({"type": "user_message", "content": [
        {"type": "text", "text": "look at this"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}}]})
    end = c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of turn")
    assert end["type"] == "response"
    assert said(c) == "Echo: look at this (+1 image)"
    req = [l for l in stdin_lines(workdir) if l.get("method") == "session/prompt"][0]
    assert req["params"]["prompt"] == [{"type": "text", "text": "look at this"},
                                       {"type": "image", "mimeType": "image/jpeg", "data": "QUJD"}]


# ---- permissions ---------------------------------------------------------------------------


@xfail_on_reference("answers with the flat {outcome, optionId}, which gemini-cli's parser rejects")
def test_permission_allowed_with_integer_id_zero(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    c.send_json({"text": "permission please"})
    call = c.wait_type("tool_call", timeout=TURN_TIMEOUT)
    assert call["tool_use_id"] == "read_file-0" and call["text"] == "ReadFile a.py"
    perm = c.wait_type("permission_request", timeout=TURN_TIMEOUT)
    assert perm["request_id"] == 0  # the JSON-RPC id as sent (an integer)
    assert perm["tool"] == "ReadFile a.py" and perm["text"] == "ReadFile a.py"
    assert [o["optionId"] for o in perm["args"]["options"]] == ["proceed_always", "proceed_once", "cancel"]
    assert perm["args"]["toolCall"]["toolCallId"] == "read_file-0"
    c.send_json({"type": "permission_response", "request_id": 0, "behavior": "allow"})
    end = c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of turn")
    assert end["type"] == "response", end
    # The one-time option, not "allow always".
    assert said(c) == "Permission granted: proceed_once"
    answer = [l for l in stdin_lines(workdir) if l.get("id") == 0 and "result" in l][0]
    assert answer == {"jsonrpc": "2.0", "id": 0, "result": {"outcome": {"outcome": "selected", "optionId": "proceed_once"}}}
    result = [e for e in c.of_type("tool_result") if e.get("tool_use_id") == "read_file-0"]
    assert result and result[0]["status"] == "completed"
    assert not c.of_type("input_ack")[1:], "permission_response must not be acked"


@xfail_on_reference("flat permission outcome")
def test_permission_denied_and_explicit_option(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    c.send_json({"text": "permission please"})
    perm = c.wait_type("permission_request", timeout=TURN_TIMEOUT)
    # A string id matches the integer request (clients often stringify ids).
    c.send_json({"type": "permission_response", "request_id": str(perm["request_id"]), "behavior": "deny"})
    c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of denied turn")
    assert said(c).endswith("Permission denied")
    n = len(c.events)
    c.send_json({"text": "permission again"})
    perm = c.wait_for(lambda e: e["type"] == "permission_request", TURN_TIMEOUT, what="second permission")
    assert perm["request_id"] == 1
    c.send_json({"type": "permission_response", "request_id": 1, "optionId": "proceed_always"})
    end = c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of turn")
    assert end["type"] == "response"
    assert said(c, n) == "Permission granted: proceed_always"


# ---- failures and the CLI going away -------------------------------------------------------


def test_failing_turn_is_an_error(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    end = run_turn(c, "please fail")
    assert end["type"] == "error"
    assert end["text"] == "Quota exceeded for quota metric 'Gemini 2.5 Pro Requests'"
    assert end["raw"]["error"]["code"] == -32603
    end2 = run_turn(c, "and now succeed")
    assert end2["type"] == "response"


@xfail_on_reference("the session ends with the CLI (session_end exit_code 3)")
def test_crash_mid_turn_keeps_the_session(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    run_turn(c, "first words")
    end = run_turn(c, "crash now")
    assert end["type"] == "error" and end["text"] == "Gemini ACP process exited"
    exited = c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "agent_exited", TURN_TIMEOUT,
                        what="agent_exited")
    assert exited["exit_code"] == 3
    assert "fake gemini: crashing as asked" in [e.get("text") for e in c.of_type("stderr")]
    assert not c.closed
    # The next prompt starts the CLI again and reloads the same ACP session.
    n = len(c.events)
    end2 = run_turn(c, "history? please")
    assert end2["type"] == "response"
    assert said(c, n) == "History: first words | crash now"
    loads = [l for l in stdin_lines(workdir) if l.get("method") == "session/load"]
    saved = (workdir / ".gemini_acp_session").read_text()
    assert loads and loads[-1]["params"] == {"sessionId": saved, "cwd": str(workdir), "mcpServers": []}
    assert len(argvs(workdir)) == 2


@xfail_on_reference("the session ends when the CLI exits after a turn")
def test_cli_exiting_after_each_turn(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    for i in range(3):
        end = run_turn(c, f"turn {i} then exit")
        assert end["type"] == "response"
        exited = c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "agent_exited", TURN_TIMEOUT,
                            what="agent_exited")
        assert exited["exit_code"] == 0
    n = len(c.events)
    run_turn(c, "history? now")
    assert said(c, n) == "History: turn 0 then exit | turn 1 then exit | turn 2 then exit"
    assert len(argvs(workdir)) == 4


def test_reconnect_loads_the_saved_session(relay, clients, workdir):
    a, _ = start_gemini(clients, relay, workdir)
    run_turn(a, "remember KIWI")
    a.close()
    b, _ = start_gemini(clients, relay, workdir)
    run_turn(b, "history? please")
    msgs = [e["text"] for e in b.of_type("assistant_message")]
    # session/load replays the conversation (ACP), then the new answer follows.
    assert msgs == ["Echo: remember KIWI", "History: remember KIWI"], msgs
    assert [l["method"] for l in stdin_lines(workdir) if l.get("method") in ("session/new", "session/load")] == \
        ["session/new", "session/load"]


# ---- interrupt and model -------------------------------------------------------------------


@xfail_on_reference("sends session/cancel as a request, which the agent answers 'Method not found'")
def test_interrupt_is_a_cancel_notification(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    c.send_json({"text": "slow please"})
    c.wait_for(lambda e: e["type"] == "assistant_message", TURN_TIMEOUT, what="the first chunk")
    c.send_json({"type": "interrupt"})
    end = c.wait_for(is_turn_end, 4, what="the cancelled answer")
    assert end["raw"]["result"] == {"stopReason": "cancelled"}
    cancel = [l for l in stdin_lines(workdir) if l.get("method") == "session/cancel"]
    assert cancel == [{"jsonrpc": "2.0", "method": "session/cancel",
                       "params": {"sessionId": (workdir / ".gemini_acp_session").read_text()}}]
    assert [a["text"] for a in c.of_type("input_ack")] == ["slow please"]


@xfail_on_reference("never answers a pending permission on cancel")
def test_interrupt_cancels_a_pending_permission(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    c.send_json({"text": "permission please"})
    perm = c.wait_type("permission_request", timeout=TURN_TIMEOUT)
    c.send_json({"type": "interrupt"})
    gone = c.wait_type("permission_cancelled", timeout=TURN_TIMEOUT)
    assert gone["request_id"] == perm["request_id"]
    end = c.wait_for(is_turn_end, TURN_TIMEOUT, what="the cancelled answer")
    assert end["raw"]["result"] == {"stopReason": "cancelled"}
    answer = [l for l in stdin_lines(workdir) if l.get("id") == perm["request_id"] and "result" in l]
    assert answer and answer[0]["result"] == {"outcome": {"outcome": "cancelled"}}


def test_set_model(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir, model="gemini-a")
    run_turn(c, "model? first")
    c.send_json({"type": "set_model", "model": "gemini-b"})
    n = len(c.events)
    run_turn(c, "model? second")
    assert said(c, n) == "Model: gemini-b"
    sm = [l for l in stdin_lines(workdir) if l.get("method") == "session/set_model"]
    assert sm and sm[0]["params"]["modelId"] == "gemini-b"
    assert [a["text"] for a in c.of_type("input_ack")] == ["model? first", "model? second"]


# ---- worker-only robustness ------------------------------------------------------------------


@xfail_on_reference("sends the second prompt concurrently")
def test_one_prompt_at_a_time(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    c.send_json({"text": "slow please"})
    c.wait_for(lambda e: e["type"] == "assistant_message", TURN_TIMEOUT, what="the first chunk")
    c.send_json({"text": "another one"})
    err = c.wait_type("error", timeout=TURN_TIMEOUT)
    assert "still answering" in err["text"]
    end = c.wait_for(lambda e: is_turn_end(e) and e["type"] == "response", 10, what="end of the slow turn")
    assert end["raw"]["result"]["stopReason"] == "end_turn"
    assert len([l for l in stdin_lines(workdir) if l.get("method") == "session/prompt"]) == 1


@xfail_on_reference("never answers agent→client requests")
def test_unsupported_agent_requests_get_an_error(relay, clients, workdir):
    c, _ = start_gemini(clients, relay, workdir)
    end = run_turn(c, "fs please")
    assert end["type"] == "response"
    assert said(c) == "fs answer: error"
    ev = [e for e in c.of_type("stream_event") if (e.get("raw") or {}).get("method") == "fs/read_text_file"]
    assert ev


# ---- the auth helper ----------------------------------------------------------------


class _TokenServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        owner = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                owner.requests.append({"path": self.path, "body": body})
                data = json.dumps({"access_token": "fresh-access", "expires_in": 3600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.skipif(IMPL != "worker", reason="the reference's refresh endpoint is hard-wired to Google")
def test_auth_helper_selects_oauth_and_refreshes_on_loopback(relays, gemini_bin, clients, workdir):
    tokens = _TokenServer()
    try:
        relay = relays.start(
            env={"GEMINI_API_KEY": "key-from-operator", "AI_RELAY_GEMINI_PREFER_OAUTH": "1",
                 "GEMINI_OAUTH_CLIENT_ID": "cid", "GEMINI_OAUTH_CLIENT_SECRET": "csecret",
                 "FAKE_GEMINI_LOG": "cwd"},
            path_dirs=[gemini_bin], worker_args=["--gemini-oauth-token-url", tokens.url])
        gemini_dir = relay.home / ".gemini"
        gemini_dir.mkdir(parents=True, exist_ok=True)
        creds = gemini_dir / "oauth_creds.json"
        creds.write_text(json.dumps({"access_token": "old", "refresh_token": "r1", "expiry_date": 0}))
        c, _ = start_gemini(clients, relay, workdir)
        run_turn(c, "hello with oauth")
        settings = json.loads((gemini_dir / "settings.json").read_text())
        assert settings == {"security": {"auth": {"selectedType": "oauth-personal"}}}
        assert (gemini_dir / "settings.json").stat().st_mode & 0o777 == 0o600
        assert tokens.requests and tokens.requests[0]["body"] == {
            "grant_type": "refresh_token", "refresh_token": "r1", "client_id": "cid", "client_secret": "csecret"}
        fresh = json.loads(creds.read_text())
        assert fresh["access_token"] == "fresh-access" and fresh["refresh_token"] == "r1"
        assert fresh["expiry_date"] > 0
        # The API key was removed from the CLI's environment (OAuth preferred).
        environ = _child_environ(workdir)
        if environ is not None:
            assert "GEMINI_API_KEY" not in environ
    finally:
        tokens.close()


def _child_environ(folder: Path):
    from harness import processes_in

    for pid, _ in processes_in(folder):
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)
    return None


def test_auth_helper_api_key(relays, gemini_bin, clients, workdir):
    relay = relays.start(env={"GEMINI_API_KEY": "key-from-operator"}, path_dirs=[gemini_bin])
    c, _ = start_gemini(clients, relay, workdir)
    run_turn(c, "hello with a key")
    settings = json.loads((relay.home / ".gemini" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"


# ---- fail-closed permission answers ----------------------------------------------------------


@xfail_on_reference("an answer without a decision defaults to allow there")
@pytest.mark.parametrize("answer", [{"approved": False}, {}, {"behavior": "maybe"},
                                    {"optionId": "proceed_always", "behavior": "maybe"},
                                    {"optionId": "made_up"}],
                         ids=["approved-false", "no-decision", "behavior-maybe", "option-with-bad-verdict",
                              "unknown-option"])
def test_non_allow_answers_deny(relay, clients, workdir, answer):
    """Only an explicit allow form runs the tool: the reject option is selected, the call fails."""
    c, _ = start_gemini(clients, relay, workdir)
    c.send_json({"text": "permission please"})
    perm = c.wait_type("permission_request", timeout=TURN_TIMEOUT)
    call_id = perm["args"]["toolCall"]["toolCallId"]
    c.send_json(dict({"type": "permission_response", "request_id": perm["request_id"]}, **answer))
    end = c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of turn")
    assert end["type"] == "response", end
    assert said(c) == "Permission denied"
    answers = [l for l in stdin_lines(workdir) if l.get("id") == perm["request_id"] and "result" in l]
    assert answers[-1]["result"] == {"outcome": {"outcome": "selected", "optionId": "cancel"}}, answers
    results = [e for e in c.of_type("tool_result") if e.get("tool_use_id") == call_id]
    assert results and results[-1]["status"] == "failed", results
    assert not [e for e in c.of_type("tool_result") if e.get("tool_use_id") == call_id and e.get("status") == "completed"]
