"""A fake Snowflake Cortex REST API on loopback (plain HTTP), answering with server-sent events.

Why: Cortex is a hosted service; the cortex adapter is tested against this server.
It serves the three endpoints the relay calls and checks the headers a real account would:

  POST /api/v2/cortex/agent:run              (agent mode: response.text.delta, tool_use, ...)
  POST /api/v2/cortex/v1/chat/completions    (chat mode: OpenAI-style choices deltas)
  POST /api/v2/cortex/analyst/message        (analyst mode: status, message.content.delta, ...)

`Authorization: Bearer <token>` must match ``token`` (else 401 with Snowflake's JSON error body).

Behaviour (by words in the latest user message):
  * "history?" → the answer lists every user text of the request's `messages`
  * "http500"  → HTTP 500 with a JSON error body
  * "error"    → an `error` SSE event (agent/analyst) / an `error` payload (chat)
  * "slow"     → one delta, then keeps the stream open (comments every 0.1 s) until the client
                 hangs up or 10 s pass
  * "warn"     → (analyst) a `warnings` event
  * otherwise  → a small complete answer: agent = thinking + text deltas + tool_use + tool_result +
                 status + [DONE]; chat = two content deltas + finish_reason + [DONE]; analyst =
                 status + text delta + sql delta + response_metadata + done
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    def user_texts(self) -> list[str]:
        out = []
        for m in self.messages:
            if m.get("role") != "user":
                continue
            c = m.get("content")
            if isinstance(c, str):
                out.append(c)
            elif isinstance(c, list):
                out.append(" ".join(p.get("text", "") for p in c if isinstance(p, dict) and p.get("type") == "text"))
        return out


class FakeSnowflake:
    def __init__(self, token: str = "secret-pat") -> None:
        self.token = token
        self.requests: list[Request] = []
        self.disconnects: list[str] = []
        self._cond = threading.Condition()
        self._server: Optional[ThreadingHTTPServer] = None

    def start(self) -> "FakeSnowflake":
        owner = self

        class Handler(_Handler):
            fake = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-snowflake", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeSnowflake":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, req: Request) -> None:
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()

    def note_disconnect(self, what: str) -> None:
        with self._cond:
            self.disconnects.append(what)
            self._cond.notify_all()

    def wait_until(self, pred, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSnowflake
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.fake.record(req)
        if self.headers.get("Authorization") != f"Bearer {self.fake.token}":
            return self._json(401, {"code": "390303", "message": "Invalid OAuth access token."})
        modes = {"/api/v2/cortex/agent:run": "agent", "/api/v2/cortex/v1/chat/completions": "chat",
                 "/api/v2/cortex/analyst/message": "analyst"}
        mode = modes.get(self.path)
        if mode is None:
            return self._json(404, {"message": f"no such endpoint {self.path}"})
        texts = req.user_texts()
        prompt = texts[-1] if texts else ""
        if "http500" in prompt:
            return self._json(500, {"code": "000500", "message": "Internal error from the fake"})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            getattr(self, f"_{mode}")(prompt, texts)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.fake.note_disconnect(prompt)
            self.close_connection = True

    # -- helpers --
    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _sse(self, event: Optional[str], payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        head = f"event: {event}\n" if event else ""
        self._chunk(f"{head}data: {text}\n\n".encode())

    def _hold(self, prompt: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self._chunk(b": still working\n\n")
            time.sleep(0.1)

    def _answer(self, prompt: str, texts: list[str]) -> str:
        if "history?" in prompt:
            return "History: " + " | ".join(texts[:-1])
        return f"Answer to: {prompt}"

    # -- modes --
    def _agent(self, prompt: str, texts: list[str]) -> None:
        if "error" in prompt:
            self._sse("error", {"code": "399504", "message": "Cortex agent failed in the fake"})
            return
        if "slow" in prompt:
            self._sse("response.text.delta", {"type": "response.text.delta", "delta": "Thinking slowly"})
            self._hold(prompt)
            return
        self._sse("response.thinking.delta", {"type": "response.thinking.delta", "delta": "Let me think."})
        answer = self._answer(prompt, texts)
        half = len(answer) // 2
        for part in (answer[:half], answer[half:]):
            self._sse("response.text.delta", {"type": "response.text.delta", "delta": part})
        self._sse("response.tool_use", {"type": "response.tool_use",
                                        "tool_use": {"id": "tu1", "name": "sql_exec", "input": {"q": "select 1"}}})
        self._sse("response.tool_result", {"type": "response.tool_result", "tool_result": {
            "tool_use_id": "tu1", "content": [{"type": "text", "text": "1 row"}]}})
        self._sse(None, {"type": "message.stop"})
        self._sse("response.status", {"type": "response.status", "status": "completed"})
        self._sse(None, "[DONE]")

    def _chat(self, prompt: str, texts: list[str]) -> None:
        if "error" in prompt:
            self._sse(None, {"error": {"message": "chat failed in the fake", "code": "390001"}})
            return
        if "slow" in prompt:
            self._sse(None, {"choices": [{"delta": {"content": "Thinking slowly"}, "finish_reason": None}]})
            self._hold(prompt)
            return
        answer = self._answer(prompt, texts)
        half = len(answer) // 2
        for part in (answer[:half], answer[half:]):
            self._sse(None, {"choices": [{"delta": {"content": part}, "finish_reason": None}]})
        self._sse(None, {"choices": [{"delta": {}, "finish_reason": "stop"}]})
        self._sse(None, "[DONE]")

    def _analyst(self, prompt: str, texts: list[str]) -> None:
        self._sse("status", {"status": "interpreting_question", "status_message": "Interpreting question"})
        if "error" in prompt:
            self._sse("error", {"message": "Analyst failed in the fake", "code": "392700"})
            return
        if "warn" in prompt:
            self._sse("warnings", {"warnings": [{"message": "Table ORDERS has no description"}]})
        if "slow" in prompt:
            self._sse("message.content.delta", {"type": "text", "text_delta": "Thinking slowly", "index": 0})
            self._hold(prompt)
            return
        self._sse("message.content.delta", {"type": "text", "text_delta": self._answer(prompt, texts), "index": 0})
        self._sse("message.content.delta", {"type": "sql", "statement_delta": "SELECT COUNT(*) ", "index": 1})
        self._sse("message.content.delta", {"type": "sql", "statement_delta": "FROM orders", "index": 1})
        self._sse("response_metadata", {"model_names": ["fake-analyst"], "question_category": "CLEAR_SQL"})
        self._sse("done", {})
