"""Differential test — the same client script and the same fake CLI against the
Python reference ai-relay 0.4.46 and relay-worker; the event sequences must match on type and key
fields, except for the documented deliberate differences listed in ALLOWED DIFFERENCES below.

The script runs once per implementation (module fixture `runs`); each test then compares one
aspect (one step of the script, the stdin lines the relays wrote to the CLI, ...), so a failure
names exactly what differs.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import pytest

from harness import texts

TURN_TIMEOUT = 30.0
HANDSHAKE_SESSION_ID = "diff-1"

# ---------------------------------------------------------------------------------------------
# ALLOWED DIFFERENCES (each one documented in the README's "Deliberate differences"; nothing else may differ)
#
#  A. `ts` values, and the relay's own control-request ids (`relay-<n>` in the reference; any
#     unique id is allowed): replaced by placeholders before comparing.
#  B. Claude conversation ids (fresh UUIDs from the fake) and project folders (one per
#     implementation): replaced by placeholders SID1, SID2, ... and <folder>.
#  C. `input_ack` position: the reference acks after spawning/writing, a persistent child may be
#     fed earlier, and relay-answered commands race with their ack; acks are compared as one
#     ordered list of texts, not by position among the other events.
#  D. (difference 12) stderr lines: the reference delivers them late (after the next stdout line)
#     or loses them when it kills the child; they are compared as sets over the whole run.
#  E. (difference 8) one persistent claude child instead of one per turn: argv after the first
#     spawn differs (`--resume` only on respawn) and is not compared; forwarding `set_model` to the
#     live child is racy in the reference (the child is killed by the next turn), so the
#     `control_response` answering set_model and the set_model stdin line are ignored.
#  F. (difference 9) the snake_case API error of Claude 2.1.x: the reference reports it as a
#     normal `assistant_message` + `response`; relay-worker as `quota_warning` + `error` (same raw).
#  G. PTY exit code: the reference sometimes reports 255 (its asyncio child watcher loses the race
#     for the exit status); relay-worker must report the tool's real exit code.
# ---------------------------------------------------------------------------------------------

PROMPTS = {
    "text": "hello there",
    "tool-allow": "please use a tool",
    "tool-deny": "use a tool again",
    "interrupt": "a slow one",
    "after-model": "which model are you",
    "stderr": "print to stderr please",
    "ratelimit": "ratelimit please",
    "after-new": "fresh start",
    "crash": "please crash",
    "after-crash": "are you back",
}


def is_turn_end(e: dict) -> bool:
    if e.get("type") not in ("response", "error"):
        return False
    raw = e.get("raw")
    if isinstance(raw, dict) and raw.get("type") == "result":
        return True
    return (e.get("metadata") or {}).get("source") == "subprocess_exit_no_result"


def relay_response(source: str) -> Callable[[dict], bool]:
    return lambda e: e.get("type") == "response" and (e.get("metadata") or {}).get("source") == source


def client_script(relay, folder: Path) -> tuple[list[dict], str | None]:
    """THE client script: identical for both implementations.

    Returns every event (labelled by step) and, if a step failed (timeout, early close), the reason;
    the steps before it are still compared, the later ones fail with that reason.
    """
    c = relay.connect()
    try:
        def step(name: str) -> None:
            c.label = name

        def turn(name: str, msg: Any = None) -> dict:
            step(name)
            c.send_json(msg if msg is not None else {"text": PROMPTS[name]})
            return c.wait_for(is_turn_end, TURN_TIMEOUT, what=f"end of step {name}")

        step("handshake")
        c.send_json({"tool": "claude", "folder": str(folder), "session_id": HANDSHAKE_SESSION_ID,
                     "model": "fake-model-a"})
        c.wait_type("session_start", timeout=15)

        turn("text")
        turn("structured", {"type": "user_message", "content": [{"type": "text", "text": "structured hello"}]})

        step("tool-allow")
        c.send_json({"text": PROMPTS["tool-allow"]})
        p = c.wait_type("permission_request", timeout=TURN_TIMEOUT)
        c.send_json({"type": "permission_response", "request_id": p["request_id"], "behavior": "allow",
                     "updatedInput": p["args"], "tool_use_id": p["tool_use_id"]})
        c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of tool-allow")

        step("tool-deny")
        c.send_json({"text": PROMPTS["tool-deny"]})
        p = c.wait_type("permission_request", timeout=TURN_TIMEOUT)
        c.send_json({"type": "permission_response", "request_id": p["request_id"], "behavior": "deny",
                     "message": "no thanks", "tool_use_id": p["tool_use_id"]})
        c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of tool-deny")

        step("interrupt")
        c.send_json({"text": PROMPTS["interrupt"]})
        c.wait_type("assistant_message", timeout=TURN_TIMEOUT)  # the fake is now waiting for the interrupt
        c.send_json({"type": "interrupt"})
        c.wait_for(is_turn_end, TURN_TIMEOUT, what="end of the interrupted turn")
        c.wait_type("control_response", timeout=TURN_TIMEOUT)

        step("set_model")
        c.send_json({"type": "set_model", "model": "fake-model-b"})
        c.wait_for(relay_response("set_model"), TURN_TIMEOUT, what="set_model response")

        turn("after-model")
        turn("stderr")

        step("cost")
        c.send_json({"text": "/cost"})
        c.wait_for(relay_response("cost_summary"), TURN_TIMEOUT, what="/cost")
        step("status")
        c.send_json({"text": "/status"})
        c.wait_for(relay_response("status_summary"), TURN_TIMEOUT, what="/status")

        turn("ratelimit")

        step("new")
        c.send_json({"text": "/new"})
        c.wait_for(relay_response("new_conversation"), TURN_TIMEOUT, what="/new")
        turn("after-new")
        turn("crash")
        turn("after-crash")
        step("end")
    except pytest.fail.Exception as exc:
        return c.events, f"step {c.label!r}: {str(exc).splitlines()[0]}"
    finally:
        c.close()
    return c.events, None


# ---- running both ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(relays, tmp_path_factory):
    """{impl: {"events": [...], "stdin": [...], "argv": [...], "folder": Path}} for both implementations."""
    out = {}
    for impl in ("reference", "worker"):
        base = tmp_path_factory.mktemp(f"diff-{impl}")
        log = base / "fake_claude.log"
        folder = Path(os.path.realpath(base)) / "project"
        folder.mkdir()
        relay = relays.start(impl, claude="fake", env={"FAKE_CLAUDE_LOG": str(log)})
        events, error = client_script(relay, folder)
        entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        out[impl] = {
            "events": events,
            "stdin": [json.loads(e["stdin"]) for e in entries if "stdin" in e],
            "argv": [e["argv"] for e in entries if "argv" in e],
            "folder": folder,
            "relay": relay,
            "error": error,  # why the script stopped early (None when it ran to the end)
        }
    return out


# ---- normalisation -------------------------------------------------------------------------------


class Placeholders:
    """Replaces run-specific values (allowed differences A and B) by stable names."""

    def __init__(self, folder: Path, events: list[dict]) -> None:
        self.subs: list[tuple[str, str]] = [(str(folder), "<folder>")]
        n = 0
        for e in events:
            if e.get("type") == "session_attach":
                sid = (e.get("metadata") or {}).get("claude_session_id")
                if isinstance(sid, str) and sid and all(sid != s for s, _ in self.subs):
                    n += 1
                    self.subs.append((sid, f"SID{n}"))
        for e in events:
            if e.get("type") == "control_response" and isinstance(e.get("request_id"), str):
                rid = e["request_id"]
                if all(rid != s for s, _ in self.subs):
                    self.subs.append((rid, "<relay-request-id>"))

    def __call__(self, v: Any) -> Any:
        if isinstance(v, str):
            for old, new in self.subs:
                v = v.replace(old, new)
            return v
        if isinstance(v, list):
            return [self(x) for x in v]
        if isinstance(v, dict):
            return {k: self(x) for k, x in v.items()}
        return v


# `seq` is ours alone (docs/protocol.md §7): compared by the session tests, not against the reference.
DROP_KEYS = {"ts", "seq", "_step", "_consumed"}


def normalised(run: dict) -> dict[str, list[dict]]:
    """Events per step, without the fields/events of allowed differences A, C, D, E."""
    ph = Placeholders(run["folder"], run["events"])
    steps: dict[str, list[dict]] = {}
    for e in run["events"]:
        t = e.get("type")
        if t in ("input_ack", "stderr"):                      # C, D
            continue
        if t == "control_response" and e["_step"] == "set_model":  # E
            continue
        if t == "control_response" and e["_step"] != "interrupt":  # E: a late set_model answer
            continue
        steps.setdefault(e["_step"], []).append(ph({k: v for k, v in e.items() if k not in DROP_KEYS}))
    return steps


def apply_difference_f(events: list[dict]) -> list[dict]:
    """F: what relay-worker must send where the reference misses Claude 2.1.x's snake_case API error."""
    out = []
    for e in events:
        raw = e.get("raw") or {}
        if e["type"] == "assistant_message" and raw.get("is_api_error_message"):
            out.append({"type": "quota_warning", "raw": raw})
        elif e["type"] == "response" and raw.get("type") == "result" and raw.get("is_error"):
            out.append({"type": "error", "raw": raw})
        else:
            out.append(e)
    return out


def show(events: list[dict]) -> list[str]:
    return [json.dumps(e, sort_keys=True, ensure_ascii=False) for e in events]


def assert_same(ref: list[dict], wrk: list[dict], what: str) -> None:
    a, b = show(ref), show(wrk)
    if a != b:
        diff = "\n".join(difflib.unified_diff(a, b, "reference", "relay-worker", lineterm="", n=1))
        pytest.fail(f"{what} differs:\n{diff}", pytrace=False)


STEPS = ["handshake", "text", "structured", "tool-allow", "tool-deny", "interrupt", "set_model", "after-model",
         "stderr", "cost", "status", "ratelimit", "new", "after-new", "crash", "after-crash"]


# ---- the comparisons -------------------------------------------------------------------------------


def reached(run: dict, step: str) -> bool:
    """Whether the script got past `step` on this run."""
    if run["error"] is None:
        return True
    failed_at = run["error"].split("'")[1]
    return STEPS.index(step) < STEPS.index(failed_at) if failed_at in STEPS else False


def test_script_completed_on_both(runs):
    errors = {impl: run["error"] for impl, run in runs.items() if run["error"]}
    assert not errors, errors


def test_reference_run_is_sane(runs):
    """Guards the test itself: the reference produced every step (else the comparison is empty)."""
    assert runs["reference"]["error"] is None, runs["reference"]["error"]
    ref = normalised(runs["reference"])
    missing = [s for s in STEPS if s not in ref]
    assert not missing, missing


@pytest.mark.parametrize("step", [s for s in STEPS if s != "ratelimit"])
def test_step_matches(runs, step):
    for impl in ("reference", "worker"):
        if not reached(runs[impl], step):
            pytest.fail(f"the {impl} run stopped before finishing this step: {runs[impl]['error']}", pytrace=False)
    ref = normalised(runs["reference"]).get(step, [])
    wrk = normalised(runs["worker"]).get(step, [])
    assert_same(ref, wrk, f"step {step!r}")


def test_ratelimit_step_matches_with_difference_f(runs):
    ref = apply_difference_f(normalised(runs["reference"]).get("ratelimit", []))
    wrk = normalised(runs["worker"]).get("ratelimit", [])

    def key(e: dict) -> dict:
        # Compare on type and the untouched native message (text/metadata wording is the worker's own).
        return {"type": e["type"], "raw": e.get("raw")}

    assert_same([key(e) for e in ref], [key(e) for e in wrk], "step 'ratelimit' (difference F)")
    warn = [e for e in wrk if e["type"] == "quota_warning"]
    assert warn and warn[0].get("text"), wrk
    assert (warn[0].get("metadata") or {}).get("api_error_status") == 429, warn[0]


def test_input_acks_match(runs):
    """C: the same acks with the same texts, in the same order (positions among other events may differ)."""
    def acks(run: dict) -> list:
        return [e.get("text") for e in run["events"] if e["type"] == "input_ack"]

    assert acks(runs["worker"]) == acks(runs["reference"])


def test_stderr_lines_delivered(runs):
    """D: the reference may deliver stderr late or lose it when the child is killed; relay-worker
    must deliver every line the fake wrote (a superset of what the reference delivered)."""
    def lines(run: dict) -> set:
        return {e.get("text") for e in run["events"] if e["type"] == "stderr"}

    ref, wrk = lines(runs["reference"]), lines(runs["worker"])
    assert "fake claude: crashing as asked" in wrk, wrk
    assert any(t and t.startswith("fake claude stderr for ") for t in wrk), wrk
    assert ref <= wrk, (ref, wrk)


def test_claude_conversation_ids_follow_the_same_pattern(runs):
    """SID1 for the first conversation, SID2 after /new, and the crash keeps (resumes) SID2."""
    def pattern(run: dict) -> list[tuple[str, str]]:
        ph = Placeholders(run["folder"], run["events"])
        return [(e["_step"], ph(e["metadata"]["claude_session_id"])) for e in run["events"]
                if e["type"] == "session_attach"]

    ref = pattern(runs["reference"])
    assert ref[0] == ("text", "SID1") and ("after-new", "SID2") in ref and ("after-crash", "SID2") in ref, ref
    assert pattern(runs["worker"]) == ref


def normalised_stdin(run: dict) -> list[dict]:
    ph = Placeholders(run["folder"], run["events"])
    out = []
    for line in run["stdin"]:
        line = ph(line)
        if line.get("type") == "control_request":
            if (line.get("request") or {}).get("subtype") == "set_model":  # E
                continue
            line["request_id"] = "<relay-request-id>"  # A
        if line.get("type") == "user":
            line["session_id"] = "<sid>"  # E: "" for a fresh per-turn child, the id for a resumed one
        out.append(line)
    return out


def test_lines_written_to_claude_stdin_match(runs):
    """What the relays *wrote* to the CLI: prompts, permission answers (with updatedInput), interrupt."""
    ref = normalised_stdin(runs["reference"])
    wrk = normalised_stdin(runs["worker"])
    assert ref, "the reference run wrote nothing to the fake CLI (FAKE_CLAUDE_LOG not passed?)"
    assert wrk, "relay-worker did not pass FAKE_CLAUDE_LOG from its environment to the child"
    assert_same(ref, wrk, "stdin lines")


def test_first_argv_matches(runs):
    ref, wrk = runs["reference"]["argv"], runs["worker"]["argv"]
    assert ref and wrk
    assert Path(wrk[0][0]).name == Path(ref[0][0]).name == "claude"
    assert wrk[0][1:] == ref[0][1:]


# ---- a PTY differential --------------------------------------------------------------------------


def pty_script(relay, folder: Path) -> dict:
    c = relay.connect()
    try:
        start = c.handshake({"tool": "generic", "folder": str(folder), "session_id": "diff-pty", "model": "m"})
        c.wait_for(lambda e: "generic>" in texts(c.events, "stdout"), 15, what="prompt")
        for word in ("alpha", "beta"):
            c.send_json({"text": word})
            c.wait_for(lambda e, w=word: f"got: {w}" in texts(c.events, "stdout"), 15, what=f"echo {word}")
        c.send_json({"text": "exit 4"})
        end = c.wait_type("session_end", timeout=15)
        c.wait_closed(10)
    finally:
        c.close()
    out_text = re.sub(r"\s+", "", texts(c.events, "stdout"))  # chunk boundaries differ; compare the text
    return {
        "metadata": {k: (v if k != "folder" else "<folder>") for k, v in start["metadata"].items()},
        "types": sorted({e["type"] for e in c.events}),
        "text": out_text,
        "acks": [e.get("text") for e in c.of_type("input_ack")],
        "exit_code": end.get("exit_code"),
        "close_code": c.close_code,
    }


def test_pty_differential(relays, tmp_path_factory):
    results = {}
    for impl in ("reference", "worker"):
        folder = Path(os.path.realpath(tmp_path_factory.mktemp(f"pty-{impl}")))
        relay = relays.start(impl, claude="fake")
        results[impl] = pty_script(relay, folder)
    ref, wrk = results["reference"], results["worker"]
    # G: the reference's asyncio child watcher sometimes loses the race for the exit status and
    # reports 255 ("unknown child process"); the exit code the tool chose (4) is what must arrive.
    assert ref.pop("exit_code") in (4, 255)
    assert wrk.pop("exit_code") == 4
    assert wrk == ref
