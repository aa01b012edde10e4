#!/usr/bin/env python3
"""A protocol-faithful fake of `claude --print --input-format stream-json --output-format stream-json
--verbose --permission-prompt-tool stdio` (; field names as in Claude Code 2.1.x).

Why: the differential test and the benchmark need a CLI whose output is *deterministic*, so the
Python reference and relay-worker can be compared event by event. (The real binary is used in
test_claude_real.py.) Installed as an executable named `claude` on the PATH of the relay under test.

Behaviour (chosen by words in the prompt):
  * every user line starts a turn that begins with `system/init` (like the real CLI, also when
    several turns share one stdin); user lines that arrive mid-turn are queued;
  * "tool"      → assistant text + tool_use(Write), `can_use_tool` control_request, waits for the
                  control_response; allow → tool_result "ran Write with <updatedInput json>",
                  deny → tool_result = the deny message; then text + result;
  * "slow"      → assistant text, then waits (≤ 30 s) for an interrupt control_request →
                  control_response, "[Request interrupted by user]", result error_during_execution;
  * "ratelimit" → the 2.1.x snake_case API-error lines (`is_api_error_message`, 429) + an error result;
  * "stderr"    → one line on stderr, then a normal answer;
  * "crash"     → exits with code 3 without a result;
  * otherwise   → assistant "Echo: <prompt>" + result.
  Control requests while idle (set_model, set_permission_mode, interrupt) get a success
  control_response; set_model changes the model reported by the next init.
  `--resume <id>` reuses the id as session_id; an id starting with "missing" fails like the real CLI.

Env: FAKE_CLAUDE_LINES=N   bench mode: each turn streams N assistant lines fast, then a result
     (FAKE_CLAUDE_LINE_BYTES=B: each line about B bytes).
     FAKE_CLAUDE_LOG=path  append {"argv"}, {"stdin"} JSON lines (tests assert what the relay wrote).
     FAKE_CLAUDE_SESSION_ID=id  session id of a fresh conversation (default: a random UUID).
Ids (tool_use_id, permission request_id) are derived from the prompt so that a per-turn relay
(new process per turn) and a persistent one produce the same ids.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import threading
import uuid

OUT = sys.stdout
LOG_PATH = os.environ.get("FAKE_CLAUDE_LOG")
_log_lock = threading.Lock()


def log(obj: dict) -> None:
    if not LOG_PATH:
        return
    with _log_lock, open(LOG_PATH, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")


def emit(obj: dict) -> None:
    OUT.write(json.dumps(obj, separators=(",", ":")) + "\n")
    OUT.flush()


def parse_argv(argv: list[str]) -> dict:
    opts = {"resume": None, "model": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--resume", "-r", "--model") and i + 1 < len(argv):
            opts["resume" if a != "--model" else "model"] = argv[i + 1]
            i += 2
            continue
        if a.startswith("--resume="):
            opts["resume"] = a.split("=", 1)[1]
        elif a.startswith("--model="):
            opts["model"] = a.split("=", 1)[1]
        i += 1
    return opts


def prompt_of(msg: dict) -> str:
    content = (msg.get("message") or {}).get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return json.dumps(content)


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class FakeClaude:
    def __init__(self) -> None:
        opts = parse_argv(sys.argv[1:])
        self.resume = opts["resume"]
        self.model = opts["model"] or "claude-fake-1"
        self.session_id = self.resume or os.environ.get("FAKE_CLAUDE_SESSION_ID") or str(uuid.uuid4())
        self.inbox: "queue.Queue[dict | None]" = queue.Queue()
        self.deferred: list[dict] = []
        self.bench_lines = int(os.environ.get("FAKE_CLAUDE_LINES", "0") or 0)
        log({"argv": sys.argv, "pid": os.getpid(), "cwd": os.getcwd()})

    # -- stdin --
    def reader(self) -> None:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            log({"stdin": line})
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                self.inbox.put(msg)
        self.inbox.put(None)

    def next_message(self, timeout: float | None = None) -> dict | None:
        return self.inbox.get(timeout=timeout)

    def answer_control(self, msg: dict, response: dict | None = None) -> None:
        emit({"type": "control_response", "response": {
            "subtype": "success", "request_id": msg.get("request_id"), "response": response or {}}})

    def handle_idle_control(self, msg: dict) -> None:
        req = msg.get("request") or {}
        if req.get("subtype") == "set_model":
            if isinstance(req.get("model"), str) and req["model"]:
                self.model = req["model"]
        self.answer_control(msg)

    # -- main loop --
    def run(self) -> int:
        threading.Thread(target=self.reader, daemon=True).start()
        while True:
            msg = self.deferred.pop(0) if self.deferred else self.next_message()
            if msg is None:
                return 0
            t = msg.get("type")
            if t == "user":
                if self.resume and self.resume.startswith("missing"):
                    print(f"No conversation found with session ID: {self.resume}", file=sys.stderr, flush=True)
                    return 1
                rc = self.turn(msg)
                if rc is not None:
                    return rc
            elif t == "control_request":
                self.handle_idle_control(msg)
            # control_response outside a turn, unknown types: ignored (like the real CLI)

    def base(self) -> dict:
        return {"parent_tool_use_id": None, "session_id": self.session_id}

    def assistant(self, content: list, h: str, n: int) -> None:
        emit({"type": "assistant", "message": {
            "id": f"msg_{h}_{n}", "type": "message", "role": "assistant", "model": self.model,
            "content": content, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 34}}, **self.base()})

    def result(self, text: str, subtype: str = "success", is_error: bool = False, **extra) -> None:
        emit({"type": "result", "subtype": subtype, "is_error": is_error, "duration_ms": 5, "duration_api_ms": 3,
              "num_turns": 1, "result": text, "stop_reason": "end_turn", "session_id": self.session_id,
              "total_cost_usd": 0.0123,
              "usage": {"input_tokens": 12, "output_tokens": 34, "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 10},
              "permission_denials": [], **extra})

    def turn(self, msg: dict) -> int | None:
        prompt = prompt_of(msg)
        h = short_hash(prompt)
        emit({"type": "system", "subtype": "init", "cwd": os.getcwd(), "session_id": self.session_id,
              "tools": ["Bash", "Edit", "Read", "Write"], "mcp_servers": [], "model": self.model,
              "permissionMode": "default", "apiKeySource": "ANTHROPIC_API_KEY", "uuid": f"init-{h}"})

        if self.bench_lines > 0:
            # As fast as possible (the benchmark measures the relay, not this fake): one template,
            # written in large blocks.
            head = json.dumps({"type": "assistant", "message": {"role": "assistant", "model": self.model,
                                                                "content": [{"type": "text", "text": "@@"}]},
                               **self.base()}, separators=(",", ":"))
            pre, post = head.split("@@")
            pre, post = ("line ".join([pre, ""])).encode(), (post + "\n").encode()
            # FAKE_CLAUDE_LINE_BYTES pads each line's text to about that many bytes.
            pad = b"x" * max(0, int(os.environ.get("FAKE_CLAUDE_LINE_BYTES", "0") or 0) - len(pre) - len(post))
            pad = b" " + pad if pad else b""
            out = sys.stdout.buffer
            block = 4096
            for start in range(0, self.bench_lines, block):
                out.write(b"".join(pre + str(i).encode() + pad + post
                                   for i in range(start, min(start + block, self.bench_lines))))
            out.flush()
            self.result(f"streamed {self.bench_lines} lines")
            return None

        if "crash" in prompt:
            print("fake claude: crashing as asked", file=sys.stderr, flush=True)
            return 3

        if "ratelimit" in prompt:
            # Claude Code 2.1.x: snake_case fields, synthetic model, then a "success" result with is_error.
            emit({"type": "assistant", "message": {
                "id": f"err_{h}", "type": "message", "role": "assistant", "model": "<synthetic>",
                "content": [{"type": "text", "text": "API Error: 429 {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}"}],
                "stop_reason": "stop_sequence", "stop_sequence": ""},
                "error": "rate_limit", "is_api_error_message": True, "api_error_status": 429, **self.base()})
            emit({"type": "result", "subtype": "success", "is_error": True, "api_error_status": 429,
                  "duration_ms": 1, "num_turns": 1,
                  "result": "API Error: 429 {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}",
                  "session_id": self.session_id, "total_cost_usd": 0, "usage": {"input_tokens": 0, "output_tokens": 0},
                  "permission_denials": [], "terminal_reason": "api_error"})
            return None

        if "stderr" in prompt:
            print(f"fake claude stderr for {h}", file=sys.stderr, flush=True)

        if "slow" in prompt:
            self.assistant([{"type": "text", "text": "Working on it..."}], h, 1)
            while True:
                try:
                    m = self.next_message(timeout=30)
                except queue.Empty:
                    self.result("timed out waiting for an interrupt", subtype="error_during_execution", is_error=True)
                    return None
                if m is None:
                    return 0
                if m.get("type") == "control_request" and (m.get("request") or {}).get("subtype") == "interrupt":
                    self.answer_control(m)
                    emit({"type": "user", "message": {"role": "user", "content": [
                        {"type": "text", "text": "[Request interrupted by user]"}]}, **self.base()})
                    emit({"type": "result", "subtype": "error_during_execution", "is_error": True,
                          "duration_ms": 5, "num_turns": 1, "errors": ["Request was aborted."],
                          "session_id": self.session_id, "total_cost_usd": 0,
                          "usage": {"input_tokens": 0, "output_tokens": 0}, "permission_denials": []})
                    return None
                if m.get("type") == "control_request":
                    self.handle_idle_control(m)
                elif m.get("type") == "user":
                    self.deferred.append(m)

        if "tool" in prompt:
            tool_use_id = f"toolu_{h}"
            request_id = f"perm-{h}"
            tool_input = {"file_path": "out.txt", "content": f"written for {h}\n"}
            self.assistant([{"type": "text", "text": "I will write the file."},
                            {"type": "tool_use", "id": tool_use_id, "name": "Write", "input": tool_input}], h, 1)
            emit({"type": "control_request", "request_id": request_id, "request": {
                "subtype": "can_use_tool", "tool_name": "Write", "display_name": "Write", "input": tool_input,
                "description": "Write out.txt", "tool_use_id": tool_use_id,
                "permission_suggestions": [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}]}})
            decision = None
            while decision is None:
                try:
                    m = self.next_message(timeout=60)
                except queue.Empty:
                    self.result("permission timeout", subtype="error_during_execution", is_error=True)
                    return None
                if m is None:
                    return 0
                t = m.get("type")
                if t == "control_response":
                    resp = m.get("response") or {}
                    if resp.get("request_id") == request_id:
                        decision = resp.get("response") or {}
                elif t == "control_request":
                    if (m.get("request") or {}).get("subtype") == "interrupt":
                        self.answer_control(m)
                        emit({"type": "control_cancel_request", "request_id": request_id})
                        self.result("", subtype="error_during_execution", is_error=True, errors=["Request was aborted."])
                        return None
                    self.handle_idle_control(m)
                elif t == "user":
                    self.deferred.append(m)
            denials = []
            if decision.get("behavior") == "allow":
                used = decision.get("updatedInput")
                content = "ran Write with " + json.dumps(used, sort_keys=True)
                is_error = False
            else:
                content = str(decision.get("message") or "Denied")
                is_error = True
                denials = [{"tool_name": "Write", "tool_use_id": tool_use_id, "tool_input": tool_input}]
            emit({"type": "user", "message": {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error}]},
                **self.base()})
            final = "Done." if not is_error else "Understood, not writing."
            self.assistant([{"type": "text", "text": final}], h, 2)
            self.result(final, permission_denials=denials)
            return None

        text = f"Echo: {prompt}"
        self.assistant([{"type": "text", "text": text}], h, 1)
        self.result(text)
        return None


if __name__ == "__main__":
    try:
        sys.exit(FakeClaude().run())
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)
