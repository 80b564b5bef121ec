"""A scripted OpenAI-compatible endpoint on 127.0.0.1, for tests that need a teacher that misbehaves.

    with ScriptedEndpoint(reply=lambda body: "Final Verdict: Correct") as ep:
        cfg = TeacherConfig(base_url=ep.base_url, model="scripted", api_key_env=None)
        ep.push(Fault.status(429, retry_after=1), Fault.status(500))   # the next two requests fail

Faults are consumed one per request, in order; once none are left, ``reply(body)`` answers.
Every request body and its Authorization header are recorded, so tests can count attempts.
Plain ``http.server`` in a daemon thread: no Ray, no event loop of its own.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["Fault", "ScriptedEndpoint", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Fault:
    """What one request gets instead of a reply."""

    kind: str  # status | hang | close
    code: int = 500  # HTTP status of a 'status' fault
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    message: str | None = None

    @staticmethod
    def status(code: int, retry_after: float | None = None, message: str | None = None) -> "Fault":
        """An HTTP error (with Retry-After for 429/503 when given, and an error message body)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return Fault("status", code=code, headers=headers, message=message)

    @staticmethod
    def hang(seconds: float) -> "Fault":
        """Accept the request and say nothing for ``seconds``."""
        return Fault("hang", seconds=seconds)

    @staticmethod
    def close() -> "Fault":
        """Close the connection without a response."""
        return Fault("close")


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    prompt_words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {
        "id": f"chatcmpl-scripted-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        # Word counts stand in for tokens: deterministic, so tests can check the accounting.
        "usage": {"prompt_tokens": prompt_words, "completion_tokens": len(text.split()),
                  "total_tokens": prompt_words + len(text.split())},
    }


class ScriptedEndpoint:
    """An OpenAI-compatible ``/v1/chat/completions`` + ``/v1/models`` server with scripted faults."""

    def __init__(self, reply: Callable[[dict[str, Any]], str] = lambda body: "ok", model: str = "scripted",
                 delay_s: float = 0.0):
        self.reply = reply
        self.model = model
        self.delay_s = delay_s  # before every reply: lets tests hold requests in flight
        self.max_concurrent = 0  # most chat requests seen in progress at once
        self._in_progress = 0
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str | None] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def hits(self) -> int:
        """Chat requests received so far (every retry counts)."""
        with self._lock:
            return len(self.requests)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "endpoint not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *faults: Fault) -> None:
        """Queue faults for the next requests, one each."""
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self, body: dict[str, Any], auth: str | None) -> Fault | None:
        with self._lock:
            self.requests.append(body)
            self.auth_headers.append(auth)
            return self._faults.popleft() if self._faults else None

    def _enter(self) -> None:
        with self._lock:
            self._in_progress += 1
            self.max_concurrent = max(self.max_concurrent, self._in_progress)

    def _leave(self) -> None:
        with self._lock:
            self._in_progress -= 1

    def start(self) -> "ScriptedEndpoint":
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send_json(200, {"object": "list", "data": [
                        {"id": endpoint.model, "object": "model", "created": 0, "owned_by": "scripted"}]})
                else:
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                fault = endpoint._next_fault(body, self.headers.get("Authorization"))
                endpoint._enter()
                try:
                    self._answer(body, fault)
                finally:
                    endpoint._leave()

            def _answer(self, body: dict[str, Any], fault: Fault | None) -> None:
                if fault is None:
                    if endpoint.delay_s:
                        endpoint._stopping.wait(endpoint.delay_s)
                    self._send_json(200, _completion(body, endpoint.reply(body)))
                elif fault.kind == "status":
                    self._send_json(fault.code, {"error": {"message": fault.message or f"scripted {fault.code}",
                                                             "type": "scripted"}}, fault.headers)
                elif fault.kind == "hang":
                    endpoint._stopping.wait(fault.seconds)
                    self.close_connection = True
                elif fault.kind == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # load tests open many connections at once
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="scripted-endpoint", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging requests are released."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "ScriptedEndpoint":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
