"""The differential test extended to codex and gemini — the same fake CLI
(fakes/fake_codex.py, fakes/fake_gemini.py) and the same client script against the Python reference
ai-relay 0.4.46 and relay-worker. Events must match on type and fields, except for the documented
deliberate differences listed below; each difference is either normalised away (and then checked
explicitly on the worker side) or asserted as a difference.

The scripts run once per implementation (module fixtures); each test compares one step.

---------------------------------------------------------------------------------------------------
ALLOWED DIFFERENCES (the README's differences sections; nothing else may differ)

 Common
  A. `ts`; run-specific ids (project folder, gemini session ids, prompt `messageId` UUIDs) become
     placeholders.
  B. `input_ack`: compared as lists of texts, not by position (codex acks twice, and the
     reference's acks race); stderr lines compared as sets (the reference delivers late).
  C9. (a reference race, not a design choice) asyncio sometimes loses the race to reap the child and
      reports `session_end` `exit_code` 255 instead of the child's code; 255 is accepted from the
      reference (codex and gemini).
 Codex
  C1. `warning`/`configWarning`/`deprecationNotice`/`guardianWarning` are `status` events (status =
      method, text = message/summary + details, content = params), not `context_warning`, and start
      no `/compact` turn. The reference's `/compact` turns are removed before comparing.
  C2. Claude-style `behavior: "allow"` accepts (the reference declines): step `command-behavior`.
  C3. List content is sent as its text ("structured hello"), not Python-repr.
  C4. `file_diff` events also carry `file_path`/`diff` (fileChange items, patchUpdated) and `diff`
      for `turn/diff/updated` (the reference reads fields that do not exist).
  C5. `tool_progress` text: `command/exec/outputDelta` decoded from `deltaBase64`,
      `item/mcpToolCall/progress` = `message` (the reference: "" / none).
  C6. `error` with `willRetry: true` is `status` `retrying` (the turn goes on).
  C7. Step `interrupt`: `status interrupted` and `turn/completed` may come in either order (both
      implementations race the turn/interrupt answer against the reader) — compared as a set.
  C8. `raw_request` needs `--allow-codex-config` on the worker (given here; without it: an error,
      see test_worker_refuses_codex_overrides_by_default).
 Gemini
  G1. Permission answers use ACP's nested outcome; the reference's flat one is rejected by the
      Gemini CLI (the fake fails the turn like gemini-cli's parser): step `permission`.
  G2. `tool_call` events carry `tool` = kind and `args` = rawInput; a `tool_call_update` with status
      completed/failed is a `tool_result` (status, content).
  G3. Interrupt is a `session/cancel` notification (the reference sends a request, which the agent
      answers "Method not found" and the turn runs on): step `interrupt`.
  G4. The CLI exiting ends the reference's session (`session_end`); relay-worker reports `status`
      `agent_exited` (with `exit_code`) and keeps the session: step `exit`.
  G5. Consequences of G1/G3 later in the run: the reference's request ids are one higher after its
      `session/cancel` request (ids are replaced by placeholders), and the conversation replayed by
      `session/load` lacks the granted-permission message and has the uncancelled slow turn's end.
---------------------------------------------------------------------------------------------------
"""
from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from harness import FAKES_DIR, install_script

TIMEOUT = 30.0
IMPLS = ("reference", "worker")


def assert_same(ref: list, wrk: list, what: str) -> None:
    a = [json.dumps(e, sort_keys=True, ensure_ascii=False) for e in ref]
    b = [json.dumps(e, sort_keys=True, ensure_ascii=False) for e in wrk]
    if a != b:
        diff = "\n".join(difflib.unified_diff(a, b, "reference", "relay-worker", lineterm="", n=1))
        pytest.fail(f"{what} differs:\n{diff}", pytrace=False)


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fake-bin")
    install_script(FAKES_DIR / "fake_codex.py", d, "codex")
    install_script(FAKES_DIR / "fake_gemini.py", d, "gemini")
    return d


def start_relay(relays, impl: str, fake_bin: Path):
    return relays.start(impl, env={"FAKE_CODEX_LOG": "cwd", "FAKE_GEMINI_LOG": "cwd"}, path_dirs=[fake_bin],
                        worker_args=["--allow-codex-config"])


def read_log(path: Path) -> tuple[list[list[str]], list[dict]]:
    argv, stdin = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if "argv" in entry:
                argv.append(entry["argv"])
            else:
                stdin.append(json.loads(entry["stdin"]))
    return argv, stdin


# ================================================================================================
# codex
# ================================================================================================

CODEX_STEPS = ["handshake", "text", "structured", "command-accept", "command-behavior", "command-deny", "patch",
               "progress", "interrupt", "fail", "retry", "set_model", "after-model", "set_policy", "after-policy",
               "raw_request", "stderr", "warn", "bye", "crash"]


def codex_script(relay, folder: Path) -> tuple[list[dict], str | None]:
    c = relay.connect()
    try:
        def step(name: str) -> None:
            c.label = name

        def prompt(name: str, msg: Any) -> str:
            """Sends a prompt and returns its turn id (from the runtime's input_ack)."""
            step(name)
            c.send_json(msg if isinstance(msg, dict) else {"text": msg})
            ack = c.wait_for(lambda e: e["type"] == "input_ack" and (e.get("metadata") or {}).get("turn_id")
                             and e.get("text") != "/compact", TIMEOUT, what=f"turn ack of {name}")
            return ack["metadata"]["turn_id"]

        def turn_end(tid: str) -> dict:
            return c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "completed"
                              and (e.get("metadata") or {}).get("turn", {}).get("id") == tid, TIMEOUT,
                              what=f"end of {tid}")

        def turn(name: str, msg: Any) -> None:
            turn_end(prompt(name, msg))

        def approval(name: str, text: str, answer: dict) -> None:
            tid = prompt(name, text)
            p = c.wait_type("permission_request", timeout=TIMEOUT)
            c.send_json(dict({"type": "permission_response", "request_id": p["request_id"]}, **answer))
            turn_end(tid)

        step("handshake")
        c.send_json({"tool": "codex", "folder": str(folder), "session_id": "diff-codex", "model": "gpt-fake",
                     "approvalPolicy": "on-request", "sandbox": "workspace-write"})
        c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "thread_started", TIMEOUT, what="thread")
        turn("text", "hello codex")
        turn("structured", {"type": "user_message", "content": [{"type": "text", "text": "structured hello"}]})
        approval("command-accept", "run a command please", {"decision": "accept"})
        approval("command-behavior", "run another command", {"behavior": "allow"})
        approval("command-deny", "one more command", {"allow": False})
        approval("patch", "patch the file", {"decision": "accept"})
        turn("progress", "show progress")
        step("interrupt")
        tid = prompt("interrupt", "slow story")
        c.wait_for(lambda e: e["type"] == "response" and "Once" in (e.get("text") or ""), TIMEOUT, what="delta")
        c.send_json({"type": "interrupt"})
        c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "interrupted", TIMEOUT, what="interrupted")
        turn_end(tid)
        turn("fail", "please fail")
        turn("retry", "please retry")
        step("set_model")
        c.send_json({"type": "set_model", "model": "gpt-other"})
        turn("after-model", "which model")
        step("set_policy")
        c.send_json({"type": "set_approval_policy", "approvalPolicy": "never"})
        c.wait_for(lambda e: e["type"] == "input_ack" and e.get("text") == "set_approval_policy", TIMEOUT, what="ack")
        turn("after-policy", "which policy")
        step("raw_request")
        c.send_json({"type": "raw_request", "method": "thread/list", "params": {}})
        c.wait_for(lambda e: e["type"] == "input_ack" and e.get("text") == "raw_request", TIMEOUT, what="ack")
        turn("stderr", "stderr please")
        turn("warn", "warn me")
        turn("bye", "bye now")
        step("crash")
        c.send_json({"text": "crash now"})
        c.wait_type("session_end", timeout=TIMEOUT)
        c.wait_closed(10)
        step("end")
    except pytest.fail.Exception as exc:
        return c.events, f"step {c.label!r}: {str(exc).splitlines()[0]}"
    finally:
        c.close()
    return c.events, None


@pytest.fixture(scope="module")
def codex_runs(relays, fake_bin, tmp_path_factory):
    out = {}
    for impl in IMPLS:
        folder = Path(os.path.realpath(tmp_path_factory.mktemp(f"codex-{impl}")))
        relay = start_relay(relays, impl, fake_bin)
        events, error = codex_script(relay, folder)
        argv, stdin = read_log(folder / ".fake-codex.log")
        out[impl] = {"events": events, "error": error, "folder": folder, "argv": argv, "stdin": stdin,
                     "close_code": None}
    return out


def compact_turns(events: list[dict]) -> set[str]:
    """Turn ids of the reference's automatic `/compact` turns (C1)."""
    return {(e.get("metadata") or {}).get("turn_id") for e in events
            if e["type"] == "input_ack" and e.get("text") == "/compact" and (e.get("metadata") or {}).get("turn_id")}


def turn_of(e: dict) -> str | None:
    raw = e.get("raw") if isinstance(e.get("raw"), dict) else {}
    params = raw.get("params") if isinstance(raw.get("params"), dict) else {}
    turn = params.get("turn") if isinstance(params.get("turn"), dict) else {}
    return params.get("turnId") or turn.get("id") or (e.get("metadata") or {}).get("turn_id")


REPR = "[{'type': 'text', 'text': 'structured hello'}]"


def codex_normalised(run: dict, impl: str) -> dict[str, list[dict]]:
    folder = str(run["folder"])
    drop = compact_turns(run["events"])
    names: dict[str, str] = {}
    steps: dict[str, list[dict]] = {}

    def rename(v: Any) -> Any:
        if isinstance(v, str):
            v = v.replace(folder, "<folder>")
            v = v.replace(REPR, "structured hello")  # C3
            return re.sub(r"(turn|item)-\d+", lambda m: names.setdefault(m.group(0), f"{m.group(1)[0].upper()}{len(names) + 1}"), v)
        if isinstance(v, list):
            return [rename(x) for x in v]
        if isinstance(v, dict):
            return {k: rename(x) for k, x in v.items()}
        return v

    for e in run["events"]:
        if e["type"] in ("input_ack", "stderr"):  # B
            continue
        if turn_of(e) in drop:  # C1: the reference's spurious /compact turns
            continue
        step = e["_step"]
        e = {k: v for k, v in e.items() if k not in ("ts", "seq", "_step", "_consumed")}
        meta = e.get("metadata") or {}
        if impl == "reference":
            if e["type"] == "context_warning" and meta.get("method") in (
                    "warning", "configWarning", "deprecationNotice", "guardianWarning"):  # C1
                params = e["raw"]["params"]
                text = params.get("message") or params.get("summary")
                if params.get("details"):
                    text += "\n" + params["details"]
                e = {"type": "status", "session_id": e["session_id"], "text": text, "metadata": meta,
                     "content": params, "raw": e["raw"], "status": meta["method"]}
            if e["type"] == "error" and (e.get("raw") or {}).get("params", {}).get("willRetry"):  # C6
                e = {"type": "status", "session_id": e["session_id"], "text": e["text"], "metadata": meta,
                     "raw": e["raw"], "status": "retrying"}
        if impl == "reference" and e["type"] == "session_end" and e.get("exit_code") in (3, 255):  # C9
            e["exit_code"] = "<exit code>"
        if impl == "worker" and e["type"] == "session_end":
            e["exit_code"] = "<exit code>" if e.get("exit_code") == 3 else e.get("exit_code")
        if e["type"] == "file_diff":  # C4
            e.pop("file_path", None)
            e.pop("diff", None)
        if e["type"] == "tool_progress" and meta.get("method") in ("command/exec/outputDelta",
                                                                   "item/mcpToolCall/progress"):  # C5
            e.pop("text", None)
        steps.setdefault(step, []).append(rename(e))
    return steps


def test_codex_script_completed_on_both(codex_runs):
    assert {i: r["error"] for i, r in codex_runs.items() if r["error"]} == {}


def test_codex_reference_run_is_sane(codex_runs):
    ref = codex_normalised(codex_runs["reference"], "reference")
    missing = [s for s in CODEX_STEPS if s not in ref and s not in ("set_model", "set_policy", "raw_request")]
    assert not missing, missing
    assert compact_turns(codex_runs["reference"]["events"]), "the reference should have started /compact turns (C1)"


STRICT_CODEX = [s for s in CODEX_STEPS if s not in ("command-behavior", "interrupt", "structured")]


def test_codex_structured_content_difference(codex_runs):
    """C3: the same events, but the reference sent Python-repr text for list content."""
    def shape(events):
        return [(e["type"], (e.get("metadata") or {}).get("method"), e.get("status")) for e in events]

    ref = codex_normalised(codex_runs["reference"], "reference")["structured"]
    wrk = codex_normalised(codex_runs["worker"], "worker")["structured"]
    assert shape(ref) == shape(wrk)
    done = [e for e in wrk if e["type"] == "assistant_message" and e.get("status") == "completed"]
    assert done[0]["text"] == "Echo: structured hello (model=gpt-fake, policy=on-request)"
    starts = {impl: [l for l in r["stdin"] if l.get("method") == "turn/start"][1]["params"]["input"][0]["text"]
              for impl, r in codex_runs.items()}
    assert starts == {"reference": REPR, "worker": "structured hello"}


@pytest.mark.parametrize("step", STRICT_CODEX)
def test_codex_step_matches(codex_runs, step):
    ref = codex_normalised(codex_runs["reference"], "reference").get(step, [])
    wrk = codex_normalised(codex_runs["worker"], "worker").get(step, [])
    assert_same(ref, wrk, f"codex step {step!r}")


def test_codex_interrupt_step_matches_as_a_set(codex_runs):
    """C7: the same events; `interrupted` and turn/completed may swap."""
    def key(events):
        return sorted(json.dumps(e, sort_keys=True) for e in events)

    ref = codex_normalised(codex_runs["reference"], "reference").get("interrupt", [])
    wrk = codex_normalised(codex_runs["worker"], "worker").get("interrupt", [])
    assert ref and key(ref) == key(wrk), (ref, wrk)
    assert any(e.get("status") == "interrupted" for e in wrk)


def test_codex_behavior_allow_is_honoured(codex_runs):
    """C2: the same answer {"behavior": "allow"}: the reference wrote decline, relay-worker accept."""
    def answers(run):
        return [l["result"] for l in run["stdin"] if "result" in l and l.get("id") == 1]

    assert answers(codex_runs["reference"]) == [{"decision": "decline"}]
    assert answers(codex_runs["worker"]) == [{"decision": "accept"}]
    for impl, word in (("reference", "decline"), ("worker", "accept")):
        text = "".join(e.get("text") or "" for e in codex_runs[impl]["events"]
                       if e.get("_step") == "command-behavior" and e["type"] == "response")
        assert text == f"command {word}", (impl, text)


def test_codex_worker_only_fields(codex_runs):
    """C4, C5: the values relay-worker adds where the reference reads non-existent fields."""
    ev = codex_runs["worker"]["events"]
    folder = str(codex_runs["worker"]["folder"])
    fc = [e for e in ev if e["type"] == "file_diff" and (e.get("metadata") or {}).get("item_type") == "fileChange"]
    assert fc and all(e["file_path"] == f"{folder}/a.py" and e["diff"] == "@@ -1 +1 @@\n-x\n+y\n" for e in fc)
    turn_diff = [e for e in ev if e["type"] == "file_diff" and (e.get("metadata") or {}).get("method") == "turn/diff/updated"]
    assert turn_diff and turn_diff[0]["diff"].startswith("diff --git a/a.py b/a.py")
    progress = {(e.get("metadata") or {}).get("method"): e.get("text") for e in ev if e["type"] == "tool_progress"}
    assert progress["command/exec/outputDelta"] == "line from exec\n"
    assert progress["item/mcpToolCall/progress"] == "fetching 3 rows"


def test_codex_acks_match(codex_runs):
    """B: the same ack texts over the run (C1's /compact acks removed, C3 applied)."""
    def acks(run):
        return sorted((e.get("text") or "").replace(REPR, "structured hello") for e in run["events"]
                      if e["type"] == "input_ack" and e.get("text") != "/compact")

    assert acks(codex_runs["worker"]) == acks(codex_runs["reference"])


def test_codex_stderr_delivered(codex_runs):
    lines = {impl: {e.get("text") for e in r["events"] if e["type"] == "stderr"} for impl, r in codex_runs.items()}
    assert "fake codex stderr for stderr please" in lines["worker"]
    assert "fake codex: crashing as asked" in lines["worker"]
    assert lines["reference"] <= lines["worker"]


def test_codex_lines_written_match(codex_runs):
    """What both wrote to app-server: the same requests, params and answers, except C1's /compact
    turns and C2's answer."""
    def lines(run):
        out = []
        for l in run["stdin"]:
            if l.get("method") == "turn/start" and l["params"]["input"][0]["text"] == "/compact":
                continue
            if l.get("id") == 1 and "result" in l:  # C2
                continue
            out.append(json.loads(json.dumps(l).replace(str(run["folder"]), "<folder>").replace(json.dumps(REPR)[1:-1], "structured hello")))
        return out

    ref, wrk = lines(codex_runs["reference"]), lines(codex_runs["worker"])
    # C1 shifts the reference's request ids after the warn step; compare ids only before it.
    n = next((i for i, l in enumerate(ref) if "warn me" in json.dumps(l)), len(ref))
    assert_same(ref[:n + 1], wrk[:n + 1], "codex stdin lines")
    strip = lambda ls: [{k: v for k, v in l.items() if k != "id"} for l in ls]
    assert_same(strip(ref[n + 1:]), strip(wrk[n + 1:]), "codex stdin lines after the warn step")
    assert codex_runs["worker"]["argv"][0][1:] == ["app-server", "--listen", "stdio://"]
    assert codex_runs["reference"]["argv"][0][1:] == codex_runs["worker"]["argv"][0][1:]


def test_codex_session_end(codex_runs):
    for impl, run in codex_runs.items():
        ends = [e for e in run["events"] if e["type"] == "session_end"]
        allowed = {3, 255} if impl == "reference" else {3}  # C9
        assert ends and ends[-1]["exit_code"] in allowed, (impl, ends)


def test_worker_refuses_codex_overrides_by_default(relays, fake_bin, tmp_path_factory):
    """C8 and the other codex settings that need an operator flag on relay-worker."""
    root = Path(os.path.realpath(tmp_path_factory.mktemp("codex-root")))
    folder = root / "project"
    folder.mkdir()
    relay = relays.start("worker", env={"FAKE_CODEX_LOG": "cwd"}, path_dirs=[fake_bin], workspace_root=root)
    for extra, text in (({"config": {"model_providers": {}}}, "codex 'config' is disabled"),
                        ({"modelProvider": "evil"}, "codex 'modelProvider' is disabled"),
                        ({"sandbox": "danger-full-access"}, "is not allowed on this worker")):
        c = relay.connect()
        c.send_json(dict({"tool": "codex", "folder": str(folder)}, **extra))
        events = c.wait_closed(TIMEOUT)
        assert [e["type"] for e in events] == ["session_start", "error"], events
        assert text in events[1]["text"]
        c.close()
    c = relay.connect()
    try:
        c.handshake({"tool": "codex", "folder": str(folder)})
        c.wait_for(lambda e: e.get("status") == "thread_started", TIMEOUT, what="thread")
        c.send_json({"type": "raw_request", "method": "thread/list", "params": {}})
        err = c.wait_type("error", timeout=TIMEOUT)
        assert err["text"] == "raw_request is disabled on this worker"
        c.send_json({"text": "hello", "sandboxPolicy": {"type": "dangerFullAccess"}})
        err = c.wait_type("error", timeout=TIMEOUT)
        assert "sandboxPolicy" in err["text"] and "not allowed" in err["text"]
        c.send_json({"text": "hello", "cwd": "/"})
        err = c.wait_type("error", timeout=TIMEOUT)
        assert "outside the permitted workspace root" in err["text"]
        c.send_json({"text": "hello", "cwd": "."})  # relative to the project folder: fine
        c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "completed", TIMEOUT, what="turn end")
    finally:
        c.close()
    _, stdin = read_log(folder / ".fake-codex.log")
    assert not [l for l in stdin if l.get("method") == "thread/list"]
    starts = [l for l in stdin if l.get("method") == "turn/start"]
    assert len(starts) == 1 and starts[0]["params"]["cwd"] == str(folder)


def test_worker_codex_rpc_timeouts(relays, fake_bin, tmp_path_factory):
    """The reference waits for app-server answers forever; relay-worker gives up after
    --codex-rpc-timeout: at start the session ends with an error, a turn/start only fails that prompt."""
    folder = Path(os.path.realpath(tmp_path_factory.mktemp("codex-timeouts")))
    hung = relays.start("worker", env={"FAKE_CODEX_HANG": "initialize"}, path_dirs=[fake_bin],
                        worker_args=["--codex-rpc-timeout", "1"])
    c = hung.connect()
    c.send_json({"tool": "codex", "folder": str(folder)})
    events = c.wait_closed(TIMEOUT)
    assert [e["type"] for e in events] == ["session_start", "error"], events
    assert events[1]["text"] == "Timed out waiting for codex app-server initialize"
    c.close()

    relay = relays.start("worker", path_dirs=[fake_bin], worker_args=["--codex-rpc-timeout", "1"])
    c = relay.connect()
    try:
        c.handshake({"tool": "codex", "folder": str(folder)})
        c.wait_for(lambda e: e.get("status") == "thread_started", TIMEOUT, what="thread")
        c.send_json({"text": "please hang"})
        err = c.wait_type("error", timeout=TIMEOUT)
        assert err["text"] == "Timed out waiting for codex app-server turn/start"
        c.send_json({"text": "and now answer"})
        c.wait_for(lambda e: e["type"] == "status" and e.get("status") == "completed", TIMEOUT, what="turn end")
        assert not c.closed
    finally:
        c.close()


# ================================================================================================
# gemini
# ================================================================================================

GEMINI_STEPS = ["handshake", "text", "structured", "tools", "permission", "fail", "set_model", "after-model",
                "stderr", "interrupt", "exit", "reconnect", "history"]


def gemini_end(e: dict) -> bool:
    raw = e.get("raw")
    return (e["type"] == "response" and e.get("text") == "" and isinstance(raw, dict) and "result" in raw) or \
        e["type"] == "error"


def gemini_script(relay, folder: Path) -> tuple[list[dict], str | None]:
    c = relay.connect()
    events: list[dict] = []
    try:
        def step(name: str) -> None:
            c.label = name

        def turn(name: str, msg: Any) -> dict:
            step(name)
            msg = msg if isinstance(msg, dict) else {"text": msg}
            c.send_json(msg)
            end = c.wait_for(gemini_end, TIMEOUT, what=f"end of {name}")
            ack = msg.get("text") or msg.get("type")
            c.wait_for(lambda e: e["type"] == "input_ack" and e.get("text") == ack, TIMEOUT, what=f"ack of {name}")
            return end

        step("handshake")
        c.send_json({"tool": "gemini", "folder": str(folder), "session_id": "diff-gemini", "model": "gemini-a"})
        c.wait_type("session_start", timeout=TIMEOUT)
        turn("text", "hello gemini")
        turn("structured", {"type": "user_message", "content": [
            {"type": "text", "text": "structured hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]})
        turn("tools", "use tools please")
        step("permission")
        c.send_json({"text": "permission please"})
        p = c.wait_type("permission_request", timeout=TIMEOUT)
        c.send_json({"type": "permission_response", "request_id": p["request_id"], "optionId": "proceed_once"})
        c.wait_for(gemini_end, TIMEOUT, what="end of permission")
        turn("fail", "please fail")
        step("set_model")
        c.send_json({"type": "set_model", "model": "gemini-b"})
        turn("after-model", "model? now")
        turn("stderr", "stderr please")
        step("interrupt")
        c.send_json({"text": "slow please"})
        c.wait_for(lambda e: e["type"] == "assistant_message" and e.get("text") == "This will take a while", TIMEOUT,
                   what="first chunk")
        c.send_json({"type": "interrupt"})
        c.wait_for(gemini_end, TIMEOUT, what="end of the interrupted turn")
        turn("exit", "please exit")
        c.wait_for(lambda e: e["type"] == "session_end" or e.get("status") == "agent_exited", TIMEOUT,
                   what="the CLI exit")
        c.close()
        events += c.events
        c = relay.connect()
        c.label = "reconnect"
        c.send_json({"tool": "gemini", "folder": str(folder), "session_id": "diff-gemini", "model": "gemini-a"})
        c.wait_type("session_start", timeout=TIMEOUT)
        turn("history", "history? please")
        step("end")
    except pytest.fail.Exception as exc:
        return events + c.events, f"step {c.label!r}: {str(exc).splitlines()[0]}"
    finally:
        c.close()
    return events + c.events, None


@pytest.fixture(scope="module")
def gemini_runs(relays, fake_bin, tmp_path_factory):
    out = {}
    for impl in IMPLS:
        folder = Path(os.path.realpath(tmp_path_factory.mktemp(f"gemini-{impl}")))
        relay = start_relay(relays, impl, fake_bin)
        events, error = gemini_script(relay, folder)
        argv, stdin = read_log(folder / ".fake-gemini.log")
        out[impl] = {"events": events, "error": error, "folder": folder, "argv": argv, "stdin": stdin}
    return out


def gemini_normalised(run: dict, impl: str) -> dict[str, list[dict]]:
    folder = str(run["folder"])
    sessions: dict[str, str] = {}
    steps: dict[str, list[dict]] = {}

    def rename(v: Any) -> Any:
        if isinstance(v, str):
            v = v.replace(folder, "<folder>")
            return re.sub(r"gs-[0-9a-f]{8}", lambda m: sessions.setdefault(m.group(0), f"GS{len(sessions) + 1}"), v)
        if isinstance(v, list):
            return [rename(x) for x in v]
        if isinstance(v, dict):
            return {k: rename(x) for k, x in v.items()}
        return v

    for e in run["events"]:
        if e["type"] in ("input_ack", "stderr"):  # B
            continue
        step = e["_step"]
        e = {k: v for k, v in e.items() if k not in ("ts", "seq", "_step", "_consumed")}
        raw = e.get("raw") if isinstance(e.get("raw"), dict) else {}
        if gemini_end(e) and "id" in raw:  # G5
            e = dict(e, raw=dict(raw, id="<id>"))
        if impl == "reference" and step == "history" and raw.get("sessionUpdate") == "agent_message_chunk" and \
                (raw.get("content") or {}).get("text") == " ... done":  # G5 (G3: the slow turn was not cancelled)
            continue
        if impl == "worker" and step == "history" and raw.get("sessionUpdate") == "agent_message_chunk" and \
                (raw.get("content") or {}).get("text") == "Permission granted: proceed_once":  # G5 (G1)
            continue
        if impl == "reference" and e["type"] == "tool_call" and raw.get("sessionUpdate") in ("tool_call", "tool_call_update"):
            if raw.get("sessionUpdate") == "tool_call_update" and raw.get("status") in ("completed", "failed"):  # G2
                e = {"type": "tool_result", "session_id": e["session_id"], "tool_use_id": raw.get("toolCallId"),
                     "raw": raw, "status": raw.get("status")}
                if raw.get("title"):
                    e["text"] = raw["title"]
                if raw.get("content") is not None:
                    e["content"] = raw["content"]
            else:
                if raw.get("kind"):
                    e["tool"] = raw["kind"]
                if raw.get("rawInput") is not None:
                    e["args"] = raw["rawInput"]
        steps.setdefault(step, []).append(rename(e))
    return steps


def test_gemini_script_completed_on_both(gemini_runs):
    assert {i: r["error"] for i, r in gemini_runs.items() if r["error"]} == {}


STRICT_GEMINI = [s for s in GEMINI_STEPS if s not in ("permission", "interrupt", "exit")]


@pytest.mark.parametrize("step", STRICT_GEMINI)
def test_gemini_step_matches(gemini_runs, step):
    ref = gemini_normalised(gemini_runs["reference"], "reference").get(step, [])
    wrk = gemini_normalised(gemini_runs["worker"], "worker").get(step, [])
    assert ref or step in ("set_model",), f"the reference produced nothing for {step}"
    assert_same(ref, wrk, f"gemini step {step!r}")


def test_gemini_permission_difference(gemini_runs):
    """G1: same request event; the reference's flat answer fails the turn, relay-worker's nested one works."""
    ref = gemini_normalised(gemini_runs["reference"], "reference")["permission"]
    wrk = gemini_normalised(gemini_runs["worker"], "worker")["permission"]
    assert_same([e for e in ref if e["type"] == "permission_request"],
                [e for e in wrk if e["type"] == "permission_request"], "permission_request")
    assert ref[-1]["type"] == "error" and "invalid permission outcome" in ref[-1]["text"]
    assert wrk[-1]["type"] == "response" and wrk[-1]["raw"]["result"] == {"stopReason": "end_turn"}
    assert any(e["type"] == "assistant_message" and e["text"] == "Permission granted: proceed_once" for e in wrk)

    def answer(run):
        return [l["result"] for l in run["stdin"] if l.get("id") == 0 and "result" in l]

    assert answer(gemini_runs["reference"]) == [{"outcome": "selected", "optionId": "proceed_once"}]
    assert answer(gemini_runs["worker"]) == [{"outcome": {"outcome": "selected", "optionId": "proceed_once"}}]


def test_gemini_interrupt_difference(gemini_runs):
    """G3: a cancel notification stops the turn; the reference's request is refused and the turn runs on."""
    def end(run):
        return [e for e in run["events"] if e["_step"] == "interrupt" and gemini_end(e)][-1]["raw"]["result"]

    assert end(gemini_runs["worker"]) == {"stopReason": "cancelled"}
    assert end(gemini_runs["reference"]) == {"stopReason": "end_turn"}
    cancels = {impl: [l for l in r["stdin"] if l.get("method") == "session/cancel"] for impl, r in gemini_runs.items()}
    assert len(cancels["worker"]) == 1 and "id" not in cancels["worker"][0]
    assert len(cancels["reference"]) == 1 and "id" in cancels["reference"][0]


def test_gemini_exit_difference(gemini_runs):
    """G4: the same turn; then session_end + close (reference) vs status agent_exited (worker)."""
    ref = gemini_normalised(gemini_runs["reference"], "reference")["exit"]
    wrk = gemini_normalised(gemini_runs["worker"], "worker")["exit"]
    assert ref[-1]["type"] == "session_end" and ref[-1]["exit_code"] in (0, 255)  # C9
    assert wrk[-1]["type"] == "status" and wrk[-1]["status"] == "agent_exited" and wrk[-1]["exit_code"] == 0
    assert_same(ref[:-1], wrk[:-1], "gemini step 'exit' before the CLI exit")


def test_gemini_acks_match(gemini_runs):
    def acks(run):
        return [(e["_step"], e.get("text")) for e in run["events"] if e["type"] == "input_ack"]

    assert acks(gemini_runs["worker"]) == acks(gemini_runs["reference"])


def test_gemini_stderr_delivered(gemini_runs):
    lines = {impl: {e.get("text") for e in r["events"] if e["type"] == "stderr"} for impl, r in gemini_runs.items()}
    assert "fake gemini stderr for stderr please" in lines["worker"]
    assert lines["reference"] <= lines["worker"]


def test_gemini_lines_written_match(gemini_runs):
    """What both wrote to the CLI, except G1's answer and G3's cancel; `session/load` also carries
    cwd and mcpServers on relay-worker."""
    def lines(run):
        out = []
        for l in run["stdin"]:
            if l.get("method") == "session/cancel" or (l.get("id") == 0 and "result" in l):
                continue
            l = json.loads(json.dumps(l).replace(str(run["folder"]), "<folder>"))
            if "method" in l and "id" in l:  # G5
                l["id"] = "<id>"
            if l.get("method") == "session/prompt":
                l["params"]["messageId"] = "<uuid>"
            if l.get("method") == "session/load":
                l["params"] = {"sessionId": "<gs>"}
            if l.get("method") == "session/prompt" and "sessionId" in l["params"]:
                l["params"]["sessionId"] = "<gs>"
            if l.get("method") == "session/set_model":
                l["params"]["sessionId"] = "<gs>"
            out.append(l)
        return out

    assert_same(lines(gemini_runs["reference"]), lines(gemini_runs["worker"]), "gemini stdin lines")
    loads = [l for l in gemini_runs["worker"]["stdin"] if l.get("method") == "session/load"]
    assert loads and set(loads[0]["params"]) == {"sessionId", "cwd", "mcpServers"}
    assert [a[1:] for a in gemini_runs["worker"]["argv"]] == [a[1:] for a in gemini_runs["reference"]["argv"]]
