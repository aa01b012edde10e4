#!/usr/bin/env python3
"""A deterministic fake of `codex app-server --listen stdio://` (JSON-RPC lines without a `jsonrpc`
member; method and field names as in the codex 0.163 app-server schema).

Why: the differential test needs a CLI whose output is identical run after run, so ai-relay 0.4.46
and relay-worker can be compared event by event (the real binary is used in test_codex_real.py).
It also sends notifications the real codex rarely sends (turn/diff/updated, patchUpdated, mcp
progress, command/exec output, raw response items, warnings, retries). Installed as `codex`.

Ids are deterministic: thread "thr-1", turns "turn-1", "turn-2", …, items "item-<n>", server
requests 0, 1, 2, … Turns run one at a time in arrival order (a turn/start during a turn is queued).

Behaviour (by words in the prompt text):
  * "command"  → commandExecution item + item/commandExecution/requestApproval; the decision is
                 reported in the agent message ("command accept" / "command decline")
  * "patch"    → fileChange item + item/fileChange/requestApproval + patchUpdated + turn/diff/updated
  * "progress" → mcp progress, command/exec output (base64), reasoning deltas, raw response items,
                 thread/compacted, an unknown notification
  * "slow"     → one delta, then waits (≤ 10 s) for turn/interrupt → turn/completed "interrupted"
  * "fail"     → `error` notification (willRetry false) + turn/completed "failed"
  * "retry"    → `error` notification with willRetry true, then a normal answer
  * "warn"     → configWarning + deprecationNotice notifications, then a normal answer
  * "stderr"   → one stderr line, then a normal answer
  * "crash"    → exits with code 3
  * "hang"     → turn/start is never answered (FAKE_CODEX_HANG=initialize: initialize is not either)
  * otherwise  → "Echo: <prompt> (model=<model>, policy=<approvalPolicy>)"
Env: FAKE_CODEX_LOG=path|cwd appends {"argv"} / {"stdin"} JSON lines (what the relay wrote).
"""
from __future__ import annotations

import base64
import json
import os
import queue
import sys
import threading

LOG_PATH = os.environ.get("FAKE_CODEX_LOG")
if LOG_PATH == "cwd":
    LOG_PATH = os.path.join(os.getcwd(), ".fake-codex.log")
_lock = threading.Lock()
THREAD = "thr-1"


def log(obj: dict) -> None:
    if LOG_PATH:
        with _lock, open(LOG_PATH, "a", encoding="utf-8") as f:
            f.write(json.dumps(obj) + "\n")


def emit(obj: dict) -> None:
    with _lock:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def notify(method: str, params: dict) -> None:
    emit({"method": method, "params": params})


class AppServer:
    def __init__(self) -> None:
        self.turns = 0
        self.items = 0
        self.requests = 0
        self.model = "gpt-fake"
        self.policy = None
        self.queue: "queue.Queue[dict]" = queue.Queue()
        self.answers: dict = {}
        self.cond = threading.Condition()
        self.interrupted: set[str] = set()
        self.cwd = os.getcwd()

    def item_id(self) -> str:
        self.items += 1
        return f"item-{self.items}"

    # -- stdin --
    def reader(self) -> None:
        for line in sys.stdin:
            if not line.strip():
                continue
            log({"stdin": line.rstrip("\n")})
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "method" not in msg:  # an answer to one of our server requests
                with self.cond:
                    self.answers[msg.get("id")] = msg
                    self.cond.notify_all()
                continue
            self.request(msg)
        self.queue.put({"eof": True})

    def reply(self, msg: dict, result) -> None:
        emit({"id": msg["id"], "result": result})

    def request(self, msg: dict) -> None:
        method, params = msg["method"], msg.get("params") or {}
        if "id" not in msg:
            return  # notifications (initialized)
        if method == "initialize":
            if os.environ.get("FAKE_CODEX_HANG") == "initialize":
                return  # never answers (tests the relay's RPC timeout)
            self.reply(msg, {"userAgent": "fake_codex/0.163.0", "platformFamily": "unix", "platformOs": "linux"})
        elif method in ("thread/start", "thread/resume"):
            if method == "thread/resume" and params.get("threadId") != THREAD:
                emit({"id": msg["id"], "error": {"code": -32600, "message": f"no rollout found for thread id {params.get('threadId')}"}})
                return
            self.model = params.get("model") or self.model
            self.policy = params.get("approvalPolicy")
            thread = {"id": THREAD, "cwd": params.get("cwd", self.cwd), "ephemeral": params.get("ephemeral", True),
                      "status": {"type": "idle"}}
            notify("thread/started", {"thread": thread})
            self.reply(msg, {"thread": thread, "model": self.model, "modelProvider": "fake",
                             "cwd": params.get("cwd"), "approvalPolicy": self.policy,
                             "sandbox": {"type": "workspaceWrite"}})
        elif method == "turn/start":
            if any("hang" in (p.get("text") or "") for p in params.get("input") or []):
                return  # never answers this turn/start
            self.turns += 1
            turn = {"id": f"turn-{self.turns}", "status": "inProgress", "items": []}
            self.reply(msg, {"turn": turn})
            self.queue.put({"turn": turn["id"], "params": params})
        elif method == "turn/interrupt":
            tid = params.get("turnId")
            with self.cond:
                active = getattr(self, "active", None)
                if tid != active:
                    emit({"id": msg["id"], "error": {"code": -32600, "message": f"turn {tid} is not running"}})
                    return
                self.interrupted.add(tid)
                self.cond.notify_all()
            self.reply(msg, {})
        elif method == "thread/list":
            self.reply(msg, {"data": [{"id": THREAD}], "nextCursor": None})
        else:
            emit({"id": msg["id"], "error": {"code": -32601, "message": f"unknown method {method}"}})

    def ask(self, method: str, params: dict, timeout: float = 30) -> dict | None:
        rid = self.requests
        self.requests += 1
        emit({"id": rid, "method": method, "params": params})
        with self.cond:
            self.cond.wait_for(lambda: rid in self.answers, timeout)
            answer = self.answers.pop(rid, None)
        notify("serverRequest/resolved", {"threadId": THREAD, "requestId": rid})
        return answer

    # -- turns --
    def run_turn(self, tid: str, params: dict) -> None:
        self.active = tid
        text = "".join(p.get("text", "") for p in params.get("input") or [] if p.get("type") == "text")
        model = params.get("model") or self.model
        policy = params.get("approvalPolicy") or self.policy
        base = {"threadId": THREAD, "turnId": tid}
        notify("turn/started", {"threadId": THREAD, "turn": {"id": tid, "status": "inProgress", "items": []}})
        status = "completed"
        error = None
        if "crash" in text:
            sys.stderr.write("fake codex: crashing as asked\n")
            sys.stderr.flush()
            os._exit(3)
        if "stderr" in text:
            sys.stderr.write(f"fake codex stderr for {text}\n")
            sys.stderr.flush()
        if "warn" in text:
            notify("configWarning", {"summary": "Codex could not find bubblewrap on PATH.", "details": None})
            notify("deprecationNotice", {"summary": "`foo` is deprecated", "details": "use `bar`"})
        if "command" in text:
            item = self.item_id()
            cmd = {"type": "commandExecution", "id": item, "command": "touch x", "cwd": self.cwd,
                   "status": "inProgress", "commandActions": []}
            notify("item/started", dict(base, item=cmd))
            answer = self.ask("item/commandExecution/requestApproval", dict(base, itemId=item, command="touch x",
                                                                            cwd=self.cwd, reason="Create x"))
            decision = ((answer or {}).get("result") or {}).get("decision")
            if decision == "accept":
                notify("item/commandExecution/outputDelta", dict(base, itemId=item, delta="made x\n"))
                notify("item/completed", dict(base, item=dict(cmd, status="completed", aggregatedOutput="made x\n", exitCode=0)))
            else:
                notify("item/completed", dict(base, item=dict(cmd, status="declined", aggregatedOutput=None, exitCode=None)))
            self.say(base, f"command {decision}")
        elif "patch" in text:
            item = self.item_id()
            changes = [{"path": f"{self.cwd}/a.py", "kind": {"type": "update", "move_path": None},
                        "diff": "@@ -1 +1 @@\n-x\n+y\n"}]
            fc = {"type": "fileChange", "id": item, "changes": changes, "status": "inProgress"}
            notify("item/started", dict(base, item=fc))
            answer = self.ask("item/fileChange/requestApproval", dict(base, itemId=item, reason=None, grantRoot=None))
            decision = ((answer or {}).get("result") or {}).get("decision")
            notify("item/fileChange/patchUpdated", dict(base, itemId=item, changes=changes))
            notify("item/completed", dict(base, item=dict(fc, status="completed" if decision == "accept" else "declined")))
            notify("turn/diff/updated", dict(base, diff="diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n"))
            self.say(base, f"patch {decision}")
        elif "progress" in text:
            item = self.item_id()
            notify("item/mcpToolCall/progress", dict(base, itemId=item, message="fetching 3 rows"))
            notify("command/exec/outputDelta", {"processId": "p1", "stream": "stdout",
                                                "deltaBase64": base64.b64encode(b"line from exec\n").decode(),
                                                "capReached": False})
            notify("item/reasoning/summaryTextDelta", dict(base, itemId=item, delta="Considering", summaryIndex=0))
            notify("rawResponseItem/completed", dict(base, item={"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "raw hello"}]}))
            notify("rawResponseItem/completed", dict(base, item={"type": "reasoning", "summary": [
                {"type": "summary_text", "text": "thought"}]}))
            notify("thread/compacted", {"threadId": THREAD, "turnId": tid})
            notify("fake/unknownNotification", {"x": 1})
            self.say(base, "progress done")
        elif "slow" in text:
            item = self.item_id()
            notify("item/agentMessage/delta", dict(base, itemId=item, delta="Once upon a time"))
            with self.cond:
                self.cond.wait_for(lambda: tid in self.interrupted, 10)
            status = "interrupted" if tid in self.interrupted else "completed"
        elif "fail" in text:
            error = {"message": "stream disconnected before completion", "codexErrorInfo": "other",
                     "additionalDetails": None}
            notify("error", dict(base, error=error, willRetry=False))
            status = "failed"
        elif "retry" in text:
            notify("error", dict(base, error={"message": "Reconnecting... 1/5", "codexErrorInfo": None}, willRetry=True))
            self.say(base, "answered after a retry")
        else:
            self.say(base, f"Echo: {text} (model={model}, policy={policy})")
        notify("thread/tokenUsage/updated", dict(base, tokenUsage={"last": {"totalTokens": 10 + len(text)}}))
        notify("turn/completed", {"threadId": THREAD, "turn": {"id": tid, "status": status, "items": [],
                                                               "error": error}})
        self.active = None

    def say(self, base: dict, text: str) -> None:
        item = self.item_id()
        msg = {"type": "agentMessage", "id": item, "text": ""}
        notify("item/started", dict(base, item=msg))
        half = len(text) // 2
        for part in (text[:half], text[half:]):
            notify("item/agentMessage/delta", dict(base, itemId=item, delta=part))
        notify("item/completed", dict(base, item=dict(msg, text=text)))


def main() -> None:
    log({"argv": sys.argv})
    server = AppServer()
    threading.Thread(target=server.reader, daemon=True).start()
    while True:
        job = server.queue.get()
        if job.get("eof"):
            return
        server.run_turn(job["turn"], job["params"])


if __name__ == "__main__":
    main()
