"""A scriptable fake of the Anthropic Messages API, so the REAL `claude` binary runs offline.

Why: the worker must be proven against the real Claude Code CLI, and the only thing that cannot
run here is the model. Claude Code calls exactly one endpoint, ``POST /v1/messages?beta=true``
with ``"stream": true``; this server answers it with the SSE event sequence of the real API.

Scripting is stateless per request, so retries and resumed processes behave deterministically:

* the *prompt* of a request is the text of the latest user message that holds text (the
  ``<system-reminder>`` blocks Claude Code prepends, and ``tool_result`` blocks, are skipped);
* the *step* is the number of assistant messages after that user message (0 = first answer,
  1 = answer after the first tool_result, ...);
* ``fake.script(key, [reply0, reply1, ...])`` answers a request whose prompt contains ``key``
  with ``replies[step]`` (the last reply repeats); anything else gets ``fake.default``.

Runs in a daemon thread of the test process (``with FakeAnthropic() as fake:``).
"""
from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

# ---- replies -------------------------------------------------------------------------------


@dataclass
class Text:
    """A streamed text answer. ``chunks`` deltas; ``delay`` seconds between deltas.

    ``hold``: after the first delta, block until the event is set (bounded by ``hold_timeout``),
    which lets a test interrupt a turn while the model is still "typing".
    """

    text: str
    chunks: int = 2
    delay: float = 0.0
    hold: Optional[threading.Event] = None
    hold_timeout: float = 30.0


@dataclass
class ToolUse:
    """One ``tool_use`` block (optionally preceded by a text block); stop_reason ``tool_use``."""

    name: str
    input: dict[str, Any]
    text_before: Optional[str] = None
    id: str = field(default_factory=lambda: "toolu_fake_" + uuid.uuid4().hex[:16])


@dataclass
class ApiError:
    """A non-streamed HTTP error, as the real API sends it (JSON body, ``request-id`` header)."""

    status: int = 429
    error_type: str = "rate_limit_error"
    message: str = "Number of request tokens has exceeded your per-minute rate limit"


Reply = Union[Text, ToolUse, ApiError, Callable[["Request"], Any]]


@dataclass
class Request:
    """One recorded request (everything a test may want to assert on)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    prompt: Optional[str]
    step: int
    ts: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return self.body["messages"]
        return []

    def all_text(self) -> str:
        """Every text/tool_result string of the conversation history, joined (for 'history' checks)."""
        out: list[str] = []
        for m in self.messages:
            out.extend(_texts_of(m.get("content"), include_reminders=False, include_tool_results=True))
        return "\n".join(out)


def _texts_of(content: Any, include_reminders: bool, include_tool_results: bool) -> list[str]:
    if isinstance(content, str):
        return [] if (not include_reminders and content.lstrip().startswith("<system-reminder>")) else [content]
    out: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            t = block.get("type")
            if t == "text" and isinstance(block.get("text"), str):
                txt = block["text"]
                if not include_reminders and txt.lstrip().startswith("<system-reminder>"):
                    continue
                out.append(txt)
            elif t == "tool_result" and include_tool_results:
                c = block.get("content")
                if isinstance(c, str):
                    out.append(c)
                else:
                    out.extend(_texts_of(c, include_reminders, include_tool_results))
    return out


def find_prompt(messages: list[dict[str, Any]]) -> tuple[Optional[str], int]:
    """(prompt, step): the latest user text (system reminders skipped) and the assistant turns after it."""
    step = 0
    for m in reversed(messages):
        if not isinstance(m, dict):
            continue
        if m.get("role") == "assistant":
            step += 1
            continue
        if m.get("role") == "user":
            texts = _texts_of(m.get("content"), include_reminders=False, include_tool_results=False)
            if texts:
                return "\n".join(texts), step
    return None, step


# ---- server --------------------------------------------------------------------------------


class FakeAnthropic:
    """The fake API server. Thread-safe; ``url`` is what goes into ANTHROPIC_BASE_URL."""

    def __init__(self, model: str = "claude-sonnet-4-5-20250929") -> None:
        self.model = model
        self.default: Reply = Text("OK from the fake model.")
        self._scripts: list[tuple[str, list[Reply]]] = []
        self._requests: list[Request] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.stream_errors: list[str] = []  # e.g. the client hung up mid-stream (interrupt)

    # -- lifecycle --
    def start(self) -> "FakeAnthropic":
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting --
    def script(self, key: str, replies: Union[Reply, list[Reply]]) -> None:
        """Answer requests whose prompt contains ``key`` with ``replies[step]`` (the last one repeats)."""
        if not isinstance(replies, list):
            replies = [replies]
        with self._cond:
            self._scripts.insert(0, (key, replies))  # later scripts win

    def reset(self) -> None:
        with self._cond:
            self._scripts.clear()
            self._requests.clear()
            self.stream_errors.clear()
            self.default = Text("OK from the fake model.")

    def _choose(self, req: Request) -> Reply:
        with self._cond:
            scripts = list(self._scripts)
        if req.prompt is not None:
            for key, replies in scripts:
                if key in req.prompt:
                    return replies[min(req.step, len(replies) - 1)]
        return self.default

    # -- recording --
    @property
    def requests(self) -> list[Request]:
        with self._cond:
            return list(self._requests)

    def message_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/v1/messages"]

    def _record(self, req: Request) -> None:
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()

    def wait_for_request(self, pred: Callable[[Request], bool], timeout: float = 30.0) -> Request:
        """Block until a recorded request satisfies ``pred`` (bounded)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self._requests:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no matching request within {timeout}s; got {[(r.path, r.prompt, r.step) for r in self._requests]}"
                    )
                self._cond.wait(left)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):04d}"


class _Handler(BaseHTTPRequestHandler):
    owner: FakeAnthropic
    protocol_version = "HTTP/1.1"
    server_version = "fake-anthropic/1"

    def log_message(self, fmt: str, *args: Any) -> None:  # keep pytest output clean
        pass

    # Any method: record it; only POST /v1/messages has an answer.
    def do_GET(self) -> None:
        self._other()

    def do_HEAD(self) -> None:
        self._other()

    def _other(self) -> None:
        self._read_body()
        self.owner._record(self._request(None))
        self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "fake: no such endpoint"}})

    def do_POST(self) -> None:
        raw = self._read_body()
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = None
        req = self._request(body)
        self.owner._record(req)
        if req.path.rstrip("/") == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": 100})
            return
        if req.path.rstrip("/") != "/v1/messages":
            self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "fake: no such endpoint"}})
            return
        reply = self.owner._choose(req)
        if callable(reply) and not isinstance(reply, (Text, ToolUse, ApiError)):
            reply = reply(req)
        try:
            if isinstance(reply, ApiError):
                self._send_json(
                    reply.status,
                    {"type": "error", "error": {"type": reply.error_type, "message": reply.message}},
                    extra={"request-id": self.owner.next_id("req"), "x-should-retry": "false"},
                )
            elif isinstance(body, dict) and body.get("stream"):
                self._stream(reply, body)
            else:
                self._send_json(200, self._whole_message(reply, body))
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.owner.stream_errors.append(repr(exc))
            self.close_connection = True

    # -- helpers --
    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _request(self, body: Any) -> Request:
        parts = urlsplit(self.path)
        messages = body.get("messages") if isinstance(body, dict) else None
        prompt, step = find_prompt(messages) if isinstance(messages, list) else (None, 0)
        return Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            prompt=prompt,
            step=step,
            ts=time.time(),
        )

    def _send_json(self, status: int, obj: Any, extra: Optional[dict[str, str]] = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
            self.wfile.flush()

    def _model(self, body: Any) -> str:
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            return body["model"]
        return self.owner.model

    def _whole_message(self, reply: Any, body: Any) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        stop = "end_turn"
        if isinstance(reply, Text):
            content.append({"type": "text", "text": reply.text})
        elif isinstance(reply, ToolUse):
            if reply.text_before:
                content.append({"type": "text", "text": reply.text_before})
            content.append({"type": "tool_use", "id": reply.id, "name": reply.name, "input": reply.input})
            stop = "tool_use"
        return {
            "id": self.owner.next_id("msg"), "type": "message", "role": "assistant", "model": self._model(body),
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, name: str, payload: dict[str, Any]) -> None:
        self._chunk(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())

    def _stream(self, reply: Any, body: Any) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", self.owner.next_id("req"))
        self.end_headers()
        self._event("message_start", {"type": "message_start", "message": {
            "id": self.owner.next_id("msg"), "type": "message", "role": "assistant", "model": self._model(body),
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": 1}}})
        index = 0
        stop_reason = "end_turn"
        if isinstance(reply, ToolUse) and reply.text_before:
            self._text_block(index, Text(reply.text_before, chunks=1))
            index += 1
        if isinstance(reply, Text):
            self._text_block(index, reply)
        elif isinstance(reply, ToolUse):
            self._event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": reply.id, "name": reply.name, "input": {}}})
            js = json.dumps(reply.input)
            half = max(1, len(js) // 2)
            for part in (js[:half], js[half:]):
                if part:
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "input_json_delta", "partial_json": part}})
            self._event("content_block_stop", {"type": "content_block_stop", "index": index})
            stop_reason = "tool_use"
        self._event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                      "usage": {"output_tokens": 5}})
        self._event("message_stop", {"type": "message_stop"})
        self._chunk(b"")  # end of chunked body

    def _text_block(self, index: int, reply: Text) -> None:
        self._event("content_block_start", {"type": "content_block_start", "index": index,
                                            "content_block": {"type": "text", "text": ""}})
        n = max(1, min(reply.chunks, len(reply.text) or 1))
        size = -(-len(reply.text) // n) if reply.text else 0
        parts = [reply.text[i:i + size] for i in range(0, len(reply.text), size)] if size else [""]
        for i, part in enumerate(parts):
            if i > 0 and reply.delay:
                time.sleep(reply.delay)
            self._event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                "delta": {"type": "text_delta", "text": part}})
            if i == 0 and reply.hold is not None:
                # Keep the stream open (the model is "still typing"); ping so the socket stays busy.
                deadline = time.monotonic() + reply.hold_timeout
                while not reply.hold.wait(0.25):
                    self._event("ping", {"type": "ping"})
                    if time.monotonic() > deadline:
                        break
        self._event("content_block_stop", {"type": "content_block_stop", "index": index})
