#!/usr/bin/env python3
"""A protocol-faithful fake of `gemini --acp --output-format stream-json` (Gemini CLI in Agent Client
Protocol mode; message shapes as in the ACP schema and gemini-cli's ACP agent).

Why: the Gemini CLI is npm-only (unreachable here), so the gemini adapter is tested against this
fake. Installed as an executable named `gemini` on the PATH of the relay under test.

Protocol (JSON-RPC 2.0, one JSON object per line, both directions):
  * `initialize` → {protocolVersion: 1, agentCapabilities: {loadSession: true, ...}, authMethods: []}
  * `session/new` {cwd, mcpServers} → {sessionId}; `session/load` {sessionId, cwd, mcpServers} replays
    the stored conversation as `session/update` notifications, then answers null; an unknown id is a
    JSON-RPC error. Conversations are kept in $HOME/.fake-gemini/<id>.json, so a new process can load
    what an earlier one said (like the real CLI's own session store).
  * `session/prompt` {sessionId, prompt: [ContentBlock]} streams `session/update` notifications and
    answers {stopReason}. `session/cancel` is a NOTIFICATION: the running prompt stops with
    stopReason "cancelled" and a pending permission request must be answered
    {outcome: {outcome: "cancelled"}}. A `session/cancel` sent as a request (with an id) is answered
    "Method not found" like any unknown request, and cancels nothing.
  * `session/request_permission` (agent → client; ids 0, 1, 2, … per process) expects the nested
    result {outcome: {outcome: "selected", optionId} | {outcome: "cancelled"}}; anything else (e.g.
    the flat {outcome: "selected", optionId}) is rejected the way gemini-cli's parser does: the turn
    fails with a JSON-RPC error.
  * `session/set_model` {sessionId, modelId} → {} (the model shows in "model?" answers).

Behaviour (chosen by words in the prompt text):
  * "permission" → tool_call (pending) + request_permission (options proceed_always / proceed_once /
    cancel); selected proceed_* → tool_call_update completed + "Permission granted: <optionId>";
    cancel → tool_call_update failed + "Permission denied"; cancelled → stopReason cancelled
  * "fail"   → a JSON-RPC error answer to the prompt (code -32603, "Quota exceeded ...")
  * "crash"  → a partial answer, then exit 3 without answering the prompt
  * "exit"   → a normal answer, then the process exits 0 (what the reference's README says ACP does)
  * "slow"   → one chunk, then waits (≤ 5 s) for session/cancel → stopReason cancelled; else end_turn
  * "fs"     → asks the client `fs/read_text_file` and reports whether it got an answer (≤ 3 s)
  * "stderr" → one stderr line, then a normal answer
  * "tools"  → tool_call (kind execute, rawInput) + tool_call_update in_progress / completed + "tools done"
  * "model?" → "Model: <model>"
  * "history?" → the texts of earlier user prompts in this ACP session
  * otherwise → a thought chunk + "Echo: <text>"
Env: FAKE_GEMINI_LOG=path appends {"argv"} and {"stdin"} JSON lines (what the relay wrote);
     FAKE_GEMINI_LOG=cwd writes them to ./.fake-gemini.log in the project folder.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import uuid

OUT = sys.stdout
LOG_PATH = os.environ.get("FAKE_GEMINI_LOG")
if LOG_PATH == "cwd":  # one log per project folder (tests that share a relay)
    LOG_PATH = os.path.join(os.getcwd(), ".fake-gemini.log")
STORE = os.path.join(os.environ.get("HOME") or "/tmp", ".fake-gemini")
_lock = threading.Lock()


def log(obj: dict) -> None:
    if LOG_PATH:
        with _lock, open(LOG_PATH, "a", encoding="utf-8") as f:
            f.write(json.dumps(obj) + "\n")


def emit(obj: dict) -> None:
    with _lock:
        OUT.write(json.dumps(obj, separators=(",", ":")) + "\n")
        OUT.flush()


def model_from_argv(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--model" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--model="):
            return a.split("=", 1)[1]
    return "gemini-2.5-pro"


class Agent:
    def __init__(self) -> None:
        self.model = model_from_argv(sys.argv[1:])
        self.sessions: dict[str, list[dict]] = {}
        self.next_request_id = 0
        self.answers: dict = {}          # request id → response message
        self.answer_cond = threading.Condition()
        self.cancelled = threading.Event()
        self.prompts: "queue.Queue[dict]" = queue.Queue()
        self.exit_after_prompt = False

    # -- persistence --
    def _path(self, sid: str) -> str:
        return os.path.join(STORE, f"{sid}.json")

    def _save(self, sid: str) -> None:
        os.makedirs(STORE, exist_ok=True)
        with open(self._path(sid), "w", encoding="utf-8") as f:
            json.dump(self.sessions[sid], f)

    def _load(self, sid: str) -> bool:
        try:
            with open(self._path(sid), encoding="utf-8") as f:
                self.sessions[sid] = json.load(f)
            return True
        except (OSError, ValueError):
            return False

    # -- output helpers --
    def update(self, sid: str, update: dict) -> None:
        emit({"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": sid, "update": update}})

    def say(self, sid: str, text: str) -> None:
        self.update(sid, {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}})
        self.sessions[sid].append({"role": "agent", "text": text})

    def request(self, method: str, params: dict, timeout: float) -> dict | None:
        rid = self.next_request_id
        self.next_request_id += 1
        emit({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        with self.answer_cond:
            self.answer_cond.wait_for(lambda: rid in self.answers or self.cancelled.is_set(), timeout)
            return self.answers.pop(rid, None)

    # -- reading stdin --
    def reader(self) -> None:
        for line in sys.stdin:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            log({"stdin": line})
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            method = msg.get("method")
            if method is None and "id" in msg:  # an answer to one of our requests
                with self.answer_cond:
                    self.answers[msg["id"]] = msg
                    self.answer_cond.notify_all()
                continue
            if method == "session/cancel" and "id" not in msg:
                self.cancelled.set()
                with self.answer_cond:
                    self.answer_cond.notify_all()
                continue
            if method == "session/prompt":
                self.prompts.put(msg)  # handled on the main thread, one at a time
                continue
            self.handle_request(msg)
        self.prompts.put({"eof": True})

    def reply(self, msg: dict, result) -> None:
        if "id" in msg:
            emit({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    def error(self, msg: dict, code: int, message: str) -> None:
        if "id" in msg:
            emit({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": code, "message": message}})

    def handle_request(self, msg: dict) -> None:
        method = msg.get("method")
        params = msg.get("params") or {}
        if method == "initialize":
            self.reply(msg, {"protocolVersion": 1, "agentCapabilities": {
                "loadSession": True, "promptCapabilities": {"image": True, "audio": False, "embeddedContext": True}},
                "authMethods": []})
        elif method == "session/new":
            sid = "gs-" + uuid.uuid4().hex[:8]
            self.sessions[sid] = []
            self._save(sid)
            self.reply(msg, {"sessionId": sid})
        elif method == "session/load":
            sid = params.get("sessionId")
            if not isinstance(sid, str) or not self._load(sid):
                self.error(msg, -32002, f"Session not found: {sid}")
                return
            for turn in self.sessions[sid]:  # replay the conversation
                kind = "user_message_chunk" if turn["role"] == "user" else "agent_message_chunk"
                self.update(sid, {"sessionUpdate": kind, "content": {"type": "text", "text": turn["text"]}})
            self.reply(msg, None)
        elif method == "session/set_model":
            self.model = params.get("modelId") or self.model
            self.reply(msg, {})
        else:
            self.error(msg, -32601, f"Method not found: {method}")

    # -- prompts --
    def run_prompt(self, msg: dict) -> None:
        params = msg.get("params") or {}
        sid = params.get("sessionId")
        if sid not in self.sessions:
            self.error(msg, -32602, f"Unknown session: {sid}")
            return
        self.cancelled.clear()
        blocks = params.get("prompt") or []
        text = "\n".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        images = [b for b in blocks if isinstance(b, dict) and b.get("type") == "image"]
        earlier = [t["text"] for t in self.sessions[sid] if t["role"] == "user"]
        self.sessions[sid].append({"role": "user", "text": text})
        stop = "end_turn"
        if "fail" in text:
            self._save(sid)
            self.error(msg, -32603, "Quota exceeded for quota metric 'Gemini 2.5 Pro Requests'")
            return
        if "crash" in text:
            self.say(sid, "Starting to answer, then")
            self._save(sid)
            sys.stderr.write("fake gemini: crashing as asked\n")
            sys.stderr.flush()
            os._exit(3)
        if "stderr" in text:
            sys.stderr.write(f"fake gemini stderr for {text}\n")
            sys.stderr.flush()
        if "permission" in text:
            stop = self.permission_turn(sid, text)
        elif "slow" in text:
            self.say(sid, "This will take a while")
            if self.cancelled.wait(5):
                stop = "cancelled"
            else:
                self.say(sid, " ... done")
        elif "fs" in text.split():
            answer = self.request("fs/read_text_file", {"sessionId": sid, "path": "README.md"}, 3)
            self.say(sid, "fs answer: " + ("error" if answer and "error" in answer else "none" if answer is None else "ok"))
        elif "tools" in text:
            call = {"toolCallId": "shell-1", "title": "Shell ls", "kind": "execute", "status": "pending",
                    "rawInput": {"command": "ls"}}
            self.update(sid, dict({"sessionUpdate": "tool_call"}, **call))
            self.update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": "shell-1", "status": "in_progress"})
            self.update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": "shell-1", "status": "completed",
                              "content": [{"type": "content", "content": {"type": "text", "text": "a.py b.py"}}]})
            self.say(sid, "tools done")
        elif "model?" in text:
            self.say(sid, f"Model: {self.model}")
        elif "history?" in text:
            self.say(sid, "History: " + " | ".join(earlier))
        else:
            self.update(sid, {"sessionUpdate": "agent_thought_chunk",
                              "content": {"type": "text", "text": f"Thinking about: {text}"}})
            self.say(sid, f"Echo: {text}" + (f" (+{len(images)} image)" if images else ""))
        self._save(sid)
        self.reply(msg, {"stopReason": stop})
        if "exit" in text.split():
            self.exit_after_prompt = True

    def permission_turn(self, sid: str, text: str) -> str:
        call_id = f"read_file-{self.next_request_id}"
        tool_call = {"toolCallId": call_id, "title": "ReadFile a.py", "kind": "read", "status": "pending",
                     "locations": [{"path": "a.py"}], "rawInput": {"absolute_path": "a.py"}}
        self.update(sid, dict({"sessionUpdate": "tool_call"}, **tool_call))
        options = [{"optionId": "proceed_always", "name": "Allow always", "kind": "allow_always"},
                   {"optionId": "proceed_once", "name": "Allow", "kind": "allow_once"},
                   {"optionId": "cancel", "name": "Reject", "kind": "reject_once"}]
        answer = self.request("session/request_permission",
                              {"sessionId": sid, "toolCall": {"toolCallId": call_id, "title": "ReadFile a.py",
                                                              "kind": "read", "status": "pending"},
                               "options": options}, 30)
        if answer is None:
            return "cancelled"
        outcome = (answer.get("result") or {}).get("outcome") if isinstance(answer.get("result"), dict) else None
        if not isinstance(outcome, dict) or outcome.get("outcome") not in ("selected", "cancelled"):
            raise PermissionShapeError(json.dumps(answer.get("result")))
        if outcome["outcome"] == "cancelled":
            self.update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": call_id, "status": "failed"})
            return "cancelled"
        option = outcome.get("optionId")
        if option in ("proceed_once", "proceed_always"):
            self.update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": call_id, "status": "completed",
                              "content": [{"type": "content", "content": {"type": "text", "text": "def main(): ..."}}]})
            self.say(sid, f"Permission granted: {option}")
        else:
            self.update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": call_id, "status": "failed"})
            self.say(sid, "Permission denied")
        return "end_turn"


class PermissionShapeError(Exception):
    pass


def main() -> None:
    log({"argv": sys.argv})
    agent = Agent()
    threading.Thread(target=agent.reader, daemon=True).start()
    while True:
        msg = agent.prompts.get()
        if msg.get("eof"):
            return
        try:
            agent.run_prompt(msg)
        except PermissionShapeError as exc:
            agent.error(msg, -32603, f"Internal error: invalid permission outcome {exc}")
        if agent.exit_after_prompt:
            return


if __name__ == "__main__":
    main()
