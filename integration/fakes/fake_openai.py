"""A scriptable fake of the OpenAI Responses API, so the REAL `codex` binary runs offline.

Why: the codex adapter must be proven against the real Codex CLI (app-server), and the only thing
that cannot run here is the model. Codex 0.163 with a custom provider (``wire_api = "responses"``)
calls exactly one endpoint, ``POST <base_url>/responses`` with ``"stream": true``; this server
answers it with the SSE event sequence of the real API.

Scripting is stateless per request (like fake_anthropic.py), so retries and resumed threads behave
deterministically:

* the *prompt* of a request is the text of the latest ``user`` message item whose text does not
  start with ``<`` (Codex prepends ``<environment_context>`` / ``<user_instructions>`` messages);
* the *step* is the number of tool-call items (``function_call`` / ``custom_tool_call`` /
  ``local_shell_call``) after that message (0 = first answer, 1 = answer after the first tool
  output, ...);
* ``fake.script(key, [reply0, reply1, ...])`` answers a request whose prompt contains ``key`` with
  ``replies[step]`` (the last reply repeats); anything else gets ``fake.default``.

Runs in a daemon thread of the test process (``with FakeOpenAI() as fake:``).
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

# ---- replies -------------------------------------------------------------------------------


@dataclass
class Text:
    """A streamed assistant message. ``hold``: after the first delta, block until the event is set
    (bounded by ``hold_timeout``) so a test can interrupt while the model is still "typing"."""

    text: str
    chunks: int = 2
    hold: Optional[threading.Event] = None
    hold_timeout: float = 30.0


@dataclass
class Shell:
    """A ``exec_command`` function call (Codex's shell tool)."""

    cmd: str
    justification: Optional[str] = None


@dataclass
class Patch:
    """An ``apply_patch`` custom tool call; ``patch`` is the whole ``*** Begin Patch`` text."""

    patch: str


@dataclass
class ApiError:
    """A non-streamed HTTP error with the API's JSON error body."""

    status: int = 429
    code: str = "rate_limit_exceeded"
    message: str = "Rate limit reached for requests"


Reply = Union[Text, Shell, Patch, ApiError, Callable[["Request"], Any]]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    prompt: Optional[str]
    step: int
    ts: float

    @property
    def input(self) -> list[dict[str, Any]]:
        if isinstance(self.body, dict) and isinstance(self.body.get("input"), list):
            return self.body["input"]
        return []

    def tool_outputs(self) -> list[str]:
        """The outputs of every tool call in the request's history (what the CLI reported back)."""
        out = []
        for item in self.input:
            if isinstance(item, dict) and item.get("type") in ("function_call_output", "custom_tool_call_output"):
                o = item.get("output")
                out.append(o if isinstance(o, str) else json.dumps(o))
        return out

    def user_texts(self) -> list[str]:
        return [t for item in self.input for t in _user_texts(item)]

    def tool_names(self) -> list[str]:
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        return [t.get("name") for t in tools or [] if isinstance(t, dict)]


def _user_texts(item: Any) -> list[str]:
    if not isinstance(item, dict) or item.get("type", "message") != "message" or item.get("role") != "user":
        return []
    content = item.get("content")
    if isinstance(content, str):
        return [content]
    return [p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") in ("input_text", "text")]


TOOL_CALL_TYPES = ("function_call", "custom_tool_call", "local_shell_call")


def find_prompt(items: list[Any]) -> tuple[Optional[str], int]:
    step = 0
    for item in reversed(items):
        if isinstance(item, dict) and item.get("type") in TOOL_CALL_TYPES:
            step += 1
            continue
        texts = [t for t in _user_texts(item) if not t.lstrip().startswith("<")]
        if texts:
            return "\n".join(texts), step
    return None, step


# ---- server --------------------------------------------------------------------------------


class FakeOpenAI:
    """The fake API server; ``base_url`` is what goes into the Codex provider's ``base_url``."""

    def __init__(self) -> None:
        self.default: Reply = Text("OK from the fake model.")
        self._scripts: list[tuple[str, list[Reply]]] = []
        self._requests: list[Request] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._server: Optional[ThreadingHTTPServer] = None
        self.stream_errors: list[str] = []

    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, key: str, replies: Union[Reply, list[Reply]]) -> None:
        if not isinstance(replies, list):
            replies = [replies]
        with self._cond:
            self._scripts.insert(0, (key, replies))

    def _choose(self, req: Request) -> Reply:
        with self._cond:
            scripts = list(self._scripts)
        if req.prompt is not None:
            for key, replies in scripts:
                if key in req.prompt:
                    return replies[min(req.step, len(replies) - 1)]
        return self.default

    @property
    def requests(self) -> list[Request]:
        with self._cond:
            return list(self._requests)

    def response_requests(self, key: Optional[str] = None) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/responses") and (key is None or (r.prompt or "").find(key) >= 0)]

    def _record(self, req: Request) -> None:
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()

    def wait_for_request(self, pred: Callable[[Request], bool], timeout: float = 30.0) -> Request:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self._requests:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching request within {timeout}s; got {[(r.path, r.prompt, r.step) for r in self._requests]}")
                self._cond.wait(left)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):04d}"


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._read_body()
        self.owner._record(self._request(None))
        if urlsplit(self.path).path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [], "models": []})
            return
        self._send_json(404, {"error": {"message": "fake: no such endpoint", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        raw = self._read_body()
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = None
        req = self._request(body)
        self.owner._record(req)
        if not req.path.rstrip("/").endswith("/responses"):
            self._send_json(404, {"error": {"message": "fake: no such endpoint", "type": "invalid_request_error"}})
            return
        reply = self.owner._choose(req)
        if callable(reply) and not isinstance(reply, (Text, Shell, Patch, ApiError)):
            reply = reply(req)
        try:
            if isinstance(reply, ApiError):
                self._send_json(reply.status, {"error": {"message": reply.message, "type": "requests",
                                                         "code": reply.code, "param": None}})
            else:
                self._stream(reply, body)
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.owner.stream_errors.append(repr(exc))
            self.close_connection = True

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n > 0 else b""
        if self.headers.get("Content-Encoding") == "zstd":  # not expected with a custom provider
            raise ValueError("zstd request bodies are not supported by the fake")
        return data

    def _request(self, body: Any) -> Request:
        items = body.get("input") if isinstance(body, dict) else None
        prompt, step = find_prompt(items) if isinstance(items, list) else (None, 0)
        return Request(method=self.command, path=urlsplit(self.path).path,
                       headers={k.lower(): v for k, v in self.headers.items()},
                       body=body, prompt=prompt, step=step, ts=time.time())

    def _send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, payload: dict[str, Any]) -> None:
        self._chunk(f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode())

    def _stream(self, reply: Any, body: Any) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = body.get("model") if isinstance(body, dict) else "gpt-fake"
        rid = self.owner.next_id("resp")
        base = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model,
                "status": "in_progress", "output": []}
        self._event({"type": "response.created", "response": base})
        self._event({"type": "response.in_progress", "response": base})
        if isinstance(reply, Text):
            item = self._message(reply)
        elif isinstance(reply, Shell):
            args = {"cmd": reply.cmd}
            if reply.justification:
                args["justification"] = reply.justification
                args["sandbox_permissions"] = "require_escalated"
            item = self._function_call("exec_command", json.dumps(args))
        elif isinstance(reply, Patch):
            item = self._custom_call("apply_patch", reply.patch)
        else:
            raise TypeError(f"unknown reply {reply!r}")
        done = dict(base, status="completed", output=[item],
                    usage={"input_tokens": 120, "input_tokens_details": {"cached_tokens": 0},
                           "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 0},
                           "total_tokens": 132})
        self._event({"type": "response.completed", "response": done})
        self._chunk(b"")

    def _message(self, reply: Text) -> dict[str, Any]:
        mid = self.owner.next_id("msg")
        item = {"type": "message", "id": mid, "role": "assistant", "status": "in_progress", "content": []}
        self._event({"type": "response.output_item.added", "output_index": 0, "item": item})
        self._event({"type": "response.content_part.added", "item_id": mid, "output_index": 0, "content_index": 0,
                     "part": {"type": "output_text", "text": "", "annotations": []}})
        n = max(1, min(reply.chunks, len(reply.text) or 1))
        size = -(-len(reply.text) // n) if reply.text else 1
        parts = [reply.text[i:i + size] for i in range(0, len(reply.text), size)] or [""]
        for i, part in enumerate(parts):
            self._event({"type": "response.output_text.delta", "item_id": mid, "output_index": 0,
                         "content_index": 0, "delta": part})
            if i == 0 and reply.hold is not None:
                deadline = time.monotonic() + reply.hold_timeout
                while not reply.hold.wait(0.25):
                    # Keep-alive comment: also notices a client that hung up (interrupt).
                    self._chunk(b": keep-alive\n\n")
                    if time.monotonic() > deadline:
                        break
        self._event({"type": "response.output_text.done", "item_id": mid, "output_index": 0, "content_index": 0,
                     "text": reply.text})
        part = {"type": "output_text", "text": reply.text, "annotations": []}
        self._event({"type": "response.content_part.done", "item_id": mid, "output_index": 0, "content_index": 0,
                     "part": part})
        done = dict(item, status="completed", content=[part])
        self._event({"type": "response.output_item.done", "output_index": 0, "item": done})
        return done

    def _function_call(self, name: str, arguments: str) -> dict[str, Any]:
        fid, cid = self.owner.next_id("fc"), self.owner.next_id("call")
        item = {"type": "function_call", "id": fid, "call_id": cid, "name": name, "arguments": "",
                "status": "in_progress"}
        self._event({"type": "response.output_item.added", "output_index": 0, "item": item})
        self._event({"type": "response.function_call_arguments.delta", "item_id": fid, "output_index": 0,
                     "delta": arguments})
        self._event({"type": "response.function_call_arguments.done", "item_id": fid, "output_index": 0,
                     "arguments": arguments})
        done = dict(item, arguments=arguments, status="completed")
        self._event({"type": "response.output_item.done", "output_index": 0, "item": done})
        return done

    def _custom_call(self, name: str, text: str) -> dict[str, Any]:
        iid, cid = self.owner.next_id("ctc"), self.owner.next_id("call")
        item = {"type": "custom_tool_call", "id": iid, "call_id": cid, "name": name, "input": "",
                "status": "in_progress"}
        self._event({"type": "response.output_item.added", "output_index": 0, "item": item})
        self._event({"type": "response.custom_tool_call_input.delta", "item_id": iid, "output_index": 0,
                     "delta": text})
        self._event({"type": "response.custom_tool_call_input.done", "item_id": iid, "output_index": 0,
                     "input": text})
        done = dict(item, input=text, status="completed")
        self._event({"type": "response.output_item.done", "output_index": 0, "item": done})
        return done
