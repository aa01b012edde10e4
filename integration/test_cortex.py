"""The cortex adapter against fakes/fake_snowflake.py, a Snowflake Cortex
REST API on loopback.

The fake is plain HTTP on 127.0.0.1; relay-worker only talks to it because the operator allows that
exact origin (`--cortex-allowed-origin http://127.0.0.1:<port>`). The token comes from the worker's
environment (`SNOWFLAKE_PAT`, and `OTHER_PAT` allowed with `--cortex-token-env`).

Covered: agent, chat and analyst modes (events, request bodies and headers, history across turns
and across sessions through `cortex_history`); refused `account_url` (host not allowed, http,
credentials/paths) and `token_env` (not on the list) — no request reaches any server; HTTP errors,
stream errors, a wrong token; interrupt (nothing follows `interrupted`, no dangling history); one
prompt at a time; analyst `warnings` is not a context warning.
"""
from __future__ import annotations

import pytest

from fakes.fake_snowflake import FakeSnowflake
from harness import IMPL, xfail_on_reference

TURN_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def snowflake():
    with FakeSnowflake(token="secret-pat") as fake:
        yield fake


@pytest.fixture(scope="module")
def relay(relays, snowflake):
    env = {"SNOWFLAKE_PAT": "secret-pat", "OTHER_PAT": "secret-pat", "UNLISTED_SECRET": "do-not-send"}
    args = ["--cortex-allowed-origin", snowflake.url,
            "--cortex-token-env", "SNOWFLAKE_PAT", "--cortex-token-env", "OTHER_PAT"]
    return relays.start(env=env, worker_args=args)


def done(e: dict) -> bool:
    return e.get("type") == "status" and e.get("status") in ("done", "cortex_history_snapshot")


def snapshot(e: dict) -> bool:
    return e.get("type") == "status" and e.get("status") == "cortex_history_snapshot"


def start(clients, relay, workdir, snowflake, mode="agent", sf=None, **extra):
    sf = dict({"account_url": snowflake.url}, **(sf or {}))
    c = clients(relay)
    st = c.handshake({"tool": "cortex", "folder": str(workdir), "mode": mode, "snowflake": sf, **extra})
    return c, st


def requests_for(snowflake, text: str):
    return [r for r in snowflake.requests if any(text in t for t in r.user_texts())]


# ---- the three modes ---------------------------------------------------------------------------


def test_agent_mode_turns_and_history(relay, snowflake, clients, workdir):
    c, st = start(clients, relay, workdir, snowflake)
    assert st["metadata"]["cmd"] == [] and st["metadata"]["tool"] == "cortex"
    c.send_json({"text": "hello agent"})
    snap = c.wait_for(snapshot, TURN_TIMEOUT, what="history snapshot")
    types = [e["type"] for e in c.events]
    assert [e["text"] for e in c.of_type("reasoning")] == ["Let me think."]
    assert "".join(e["text"] for e in c.of_type("response")) == "Answer to: hello agent"
    call = c.of_type("tool_call")[0]
    assert call["tool"] == "sql_exec" and call["tool_use_id"] == "tu1" and call["args"] == {"q": "select 1"}
    assert call["text"] == 'sql_exec\n{\n  "q": "select 1"\n}'
    result = c.of_type("tool_result")[0]
    assert result["tool_use_id"] == "tu1" and result["text"] == "1 row"
    statuses = [e.get("status") for e in c.of_type("status")]
    assert statuses == ["completed", "done", "cortex_history_snapshot"], statuses
    assert types.index("tool_result") < types.index("status")
    assert snap["metadata"]["cortex_history"] == [
        {"role": "user", "content": [{"type": "text", "text": "hello agent"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Answer to: hello agent"}]},
    ]
    req = requests_for(snowflake, "hello agent")[0]
    assert req.path == "/api/v2/cortex/agent:run"
    assert req.body == {"model": "claude-3-5-sonnet", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hello agent"}]}], "stream": True}
    assert req.headers["authorization"] == "Bearer secret-pat"
    assert req.headers["x-snowflake-authorization-token-type"] == "PROGRAMMATIC_ACCESS_TOKEN"
    assert req.headers["accept"] == "text/event-stream, application/json"
    assert req.headers["content-type"] == "application/json"
    assert [a["text"] for a in c.of_type("input_ack")] == ["hello agent"]

    # A second turn sends the whole conversation.
    n = len(c.events)
    c.send_json({"text": "history? agent"})
    c.wait_for(lambda e: snapshot(e) and c.events.index(e) >= n, TURN_TIMEOUT, what="second snapshot")
    assert "".join(e["text"] for e in c.events[n:] if e["type"] == "response") == "History: hello agent"
    req2 = requests_for(snowflake, "history? agent")[0]
    assert [m["role"] for m in req2.messages] == ["user", "assistant", "user"]


def test_history_across_sessions(relay, snowflake, clients, workdir):
    history = [{"role": "user", "content": [{"type": "text", "text": "earlier question"}]},
               {"role": "assistant", "content": [{"type": "text", "text": "earlier answer"}]}]
    c, _ = start(clients, relay, workdir, snowflake, cortex_history=history)
    c.send_json({"text": "history? restored"})
    snap = c.wait_for(snapshot, TURN_TIMEOUT, what="snapshot")
    assert "".join(e["text"] for e in c.of_type("response")) == "History: earlier question"
    assert snap["metadata"]["cortex_history"][:2] == history
    assert len(snap["metadata"]["cortex_history"]) == 4


def test_chat_mode(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake, mode="chat", model="llama3.1-70b")
    c.send_json({"type": "user_message", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "chat"}]})
    snap = c.wait_for(snapshot, TURN_TIMEOUT, what="snapshot")
    assert "".join(e["text"] for e in c.of_type("response")) == "Answer to: hello\nchat"
    assert [e.get("status") for e in c.of_type("status")] == ["stop", "done", "cortex_history_snapshot"]
    req = requests_for(snowflake, "hello\nchat")[0]
    assert req.path == "/api/v2/cortex/v1/chat/completions"
    assert req.body == {"model": "llama3.1-70b", "messages": [{"role": "user", "content": "hello\nchat"}],
                        "stream": True}
    assert snap["metadata"]["cortex_history"][0] == {"role": "user", "content": "hello\nchat"}
    c.send_json({"text": "history? chat"})
    c.wait_for(lambda e: snapshot(e) and e is not snap, TURN_TIMEOUT, what="second snapshot")
    req2 = requests_for(snowflake, "history? chat")[0]
    # Agent-style list contents are flattened for the chat API.
    assert req2.body["messages"][1] == {"role": "assistant", "content": "Answer to: hello\nchat"}


def test_analyst_mode(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake, mode="analyst",
                 sf={"semantic_view": "DB.SCHEMA.ORDERS_VIEW"})
    c.send_json({"text": "how many orders"})
    c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "done", TURN_TIMEOUT, what="done")
    assert [e.get("status") for e in c.of_type("status")][:1] == ["interpreting_question"]
    assert [e["text"] for e in c.of_type("response")] == ["Answer to: how many orders"]
    sql = c.of_type("tool_call")
    assert [e["text"] for e in sql] == ["SELECT COUNT(*) ", "FROM orders"]
    assert sql[0]["tool"] == "sql" and sql[0]["args"] == {"statement_delta": "SELECT COUNT(*) ", "index": 1}
    meta = [e for e in c.of_type("status") if e.get("status") == "response_metadata"][0]
    assert meta["metadata"] == {"model_names": ["fake-analyst"], "question_category": "CLEAR_SQL"}
    req = requests_for(snowflake, "how many orders")[0]
    assert req.path == "/api/v2/cortex/analyst/message"
    assert req.body == {"messages": [{"role": "user", "content": [{"type": "text", "text": "how many orders"}]}],
                        "stream": True, "semantic_view": "DB.SCHEMA.ORDERS_VIEW"}


@xfail_on_reference("never adds analyst answers to the history")
def test_analyst_history_keeps_the_answers(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake, mode="analyst", sf={"semantic_model_file": "@st/m.yaml"})
    c.send_json({"text": "count orders"})
    snap = c.wait_for(snapshot, TURN_TIMEOUT, what="snapshot")
    assert snap["metadata"]["cortex_history"][-1] == {"role": "analyst", "content": [
        {"type": "text", "text": "Answer to: count orders"}, {"type": "sql", "statement": "SELECT COUNT(*) FROM orders"}]}
    c.send_json({"text": "history? analyst"})
    c.wait_for(lambda e: snapshot(e) and e is not snap, TURN_TIMEOUT, what="second snapshot")
    req = requests_for(snowflake, "history? analyst")[0]
    assert [m["role"] for m in req.messages] == ["user", "analyst", "user"]


@xfail_on_reference("analyst warnings are a context_warning and trigger a '/compact' request")
def test_analyst_warnings_are_not_context_warnings(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake, mode="analyst", sf={"semantic_view": "V"})
    c.send_json({"text": "warn me"})
    c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "done", TURN_TIMEOUT, what="done")
    warn = [e for e in c.of_type("status") if e.get("status") == "warnings"]
    assert warn and "no description" in warn[0]["text"]
    assert not c.of_type("context_warning")
    assert not requests_for(snowflake, "/compact")


# ---- the allow-lists -------------------------------------------------------------------------------


def refused(c) -> dict:
    """The session refuses at start: session_start, one error, close; no session_end."""
    events = c.wait_closed(TURN_TIMEOUT)
    types = [e["type"] for e in events]
    assert types == ["session_start", "error"], types
    return events[1]


@pytest.mark.parametrize("url, why", [
    ("https://evil.example.com", "not on this worker's Cortex allow-list"),
    ("https://snowflakecomputing.com.evil.example", "not on this worker's Cortex allow-list"),
    ("http://acct.snowflakecomputing.com", "must use https"),
    ("https://user:pw@acct.snowflakecomputing.com", "must be a plain https://<host> URL"),
    ("https://acct.snowflakecomputing.com/some/path", "must be a plain https://<host> URL"),
    ("http://127.0.0.1:1", "must use https"),
])
@xfail_on_reference("sends the token to any account_url")
def test_refused_account_url(relay, snowflake, clients, workdir, url, why):
    before = len(snowflake.requests)
    c = clients(relay)
    c.handshake({"tool": "cortex", "folder": str(workdir), "snowflake": {"account_url": url}})
    err = refused(c)
    assert why in err["text"], err
    assert len(snowflake.requests) == before


@xfail_on_reference("reads any worker environment variable named by token_env")
def test_refused_token_env(relay, snowflake, clients, workdir):
    before = len(snowflake.requests)
    c = clients(relay)
    c.handshake({"tool": "cortex", "folder": str(workdir),
                 "snowflake": {"account_url": snowflake.url, "token_env": "UNLISTED_SECRET"}})
    err = refused(c)
    assert "token_env 'UNLISTED_SECRET' is not on this worker's allow-list" in err["text"]
    assert len(snowflake.requests) == before
    assert not [r for r in snowflake.requests if "do-not-send" in r.headers.get("authorization", "")]


def test_allowed_token_env(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake, sf={"token_env": "OTHER_PAT"})
    c.send_json({"text": "hello other pat"})
    c.wait_for(snapshot, TURN_TIMEOUT, what="snapshot")
    assert requests_for(snowflake, "hello other pat")[0].headers["authorization"] == "Bearer secret-pat"


@xfail_on_reference("checks settings per prompt, not at session start")
def test_missing_account_url_and_semantic_model(relay, snowflake, clients, workdir):
    c = clients(relay)
    c.handshake({"tool": "cortex", "folder": str(workdir)})
    assert refused(c)["text"].startswith("Snowflake Cortex requires snowflake.account_url")
    c2 = clients(relay)
    c2.handshake({"tool": "cortex", "folder": str(workdir), "mode": "analyst", "account_url": snowflake.url})
    assert refused(c2)["text"].startswith("Cortex Analyst requires one of")


# ---- failures ----------------------------------------------------------------------------------


def test_http_error_and_stream_error(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake)
    c.send_json({"text": "http500 please"})
    err = c.wait_type("error", timeout=TURN_TIMEOUT)
    assert err["text"].startswith("Snowflake Cortex HTTP 500: ") and "Internal error from the fake" in err["text"]
    c.send_json({"text": "error please"})
    err2 = c.wait_for(lambda e: e["type"] == "error" and e is not err, TURN_TIMEOUT, what="stream error")
    assert err2["text"] == "Cortex agent failed in the fake"
    c.send_json({"text": "history? after the failures"})
    c.wait_for(snapshot, TURN_TIMEOUT, what="snapshot")
    req = requests_for(snowflake, "history? after the failures")[0]
    if IMPL == "worker":  # the reference leaves the failed user message in the history
        assert req.user_texts() == ["error please", "history? after the failures"]


def test_wrong_token(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake, sf={"token": "wrong"})
    c.send_json({"text": "with a wrong token"})
    err = c.wait_type("error", timeout=TURN_TIMEOUT)
    assert err["text"].startswith("Snowflake Cortex HTTP 401: ") and "Invalid OAuth access token" in err["text"]


@xfail_on_reference("the HTTP thread keeps emitting events after 'interrupted'")
def test_interrupt_stops_the_request(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake)
    c.send_json({"text": "slow please"})
    c.wait_for(lambda e: e["type"] == "response", TURN_TIMEOUT, what="first delta")
    c.send_json({"type": "interrupt"})
    c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "interrupted", TURN_TIMEOUT,
               what="interrupted")
    assert snowflake.wait_until(lambda: "slow please" in snowflake.disconnects, 5), "the request was not stopped"
    at = len(c.events)
    c.send_json({"text": "history? after interrupt"})
    c.wait_for(snapshot, TURN_TIMEOUT, what="snapshot")
    late = [e for e in c.events[at:] if e["type"] == "response" and "slowly" in (e.get("text") or "")]
    assert not late
    req = requests_for(snowflake, "history? after interrupt")[0]
    assert req.user_texts() == ["history? after interrupt"]


@xfail_on_reference("runs concurrent prompts on one shared history")
def test_one_prompt_at_a_time(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake, mode="chat")
    c.send_json({"text": "slow please"})
    c.wait_for(lambda e: e["type"] == "response", TURN_TIMEOUT, what="first delta")
    c.send_json({"text": "another"})
    err = c.wait_type("error", timeout=TURN_TIMEOUT)
    assert "still answering" in err["text"]
    c.send_json({"type": "interrupt"})
    c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "interrupted", TURN_TIMEOUT, what="interrupted")
    assert not requests_for(snowflake, "another")


@xfail_on_reference("urllib's timeout is per socket read, so a stream that keeps sending never times out")
def test_timeout_bounds_the_whole_request(relay, snowflake, clients, workdir):
    c, _ = start(clients, relay, workdir, snowflake, sf={"timeout": 1})
    c.send_json({"text": "slow timeout please"})
    err = c.wait_type("error", timeout=TURN_TIMEOUT)
    assert err["text"] == "Snowflake Cortex request timed out after 1 s"
    assert snowflake.wait_until(lambda: "slow timeout please" in snowflake.disconnects, 5)
    c.send_json({"text": "history? after the timeout"})
    c.wait_for(snapshot, TURN_TIMEOUT, what="snapshot")
    assert requests_for(snowflake, "history? after the timeout")[-1].user_texts() == ["history? after the timeout"]
