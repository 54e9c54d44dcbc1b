"""A misbehaving HTTP gateway for tests: a threaded ``http.server`` on 127.0.0.1 (port 0) that
answers what each test scripts, right or wrong: any status, headers and body, redirects, answers
trickled a byte at a time (body or headers), stuck pages, bodies cut off mid-way.

Routes match a method and the end of the path, so one script fits every gateway whatever its base
path (``/v1/...``, ``/getdata/...``, ``/api/v3/...``). Every request is recorded (method, path,
query, headers, body) so a test can assert what reached the server, e.g. no credentials.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One scripted answer.

    :param trickle: seconds between single bytes of the body (a server that never quite answers).
    :param trickle_headers: trickle the status line and headers too, not just the body.
    :param cut_after: send only this many bytes of the body, then close (``Content-Length`` says more).
    :param chunked: send the body with ``Transfer-Encoding: chunked`` (no ``Content-Length``).
    """

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    trickle: float | None = None
    trickle_headers: bool = False
    cut_after: int | None = None
    chunked: bool = False

    @property
    def data(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else self.body


@dataclass(frozen=True)
class Seen:
    """A request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def raw(self) -> str:
        """Everything the client sent, as text (to look for leaked secrets)."""
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"{self.method} {self.path}?{self.query}\n{head}\n\n{self.body.decode('utf-8', 'replace')}"


Script = Reply | Callable[[Seen], Reply]


class HostileServer:
    """The server; use :func:`run_hostile`. Unscripted requests get a 404."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, Script]] = []
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def on(self, method: str, path_end: str, script: Script) -> HostileServer:
        """Answer ``method`` (``*``: any) requests whose path ends with ``path_end`` (``""``: any path)
        by ``script``; the route added last wins."""
        self.routes.insert(
            0, (method.upper(), "/" + path_end.strip("/") if path_end.strip("/") else "", script)
        )
        return self

    def reply_for(self, seen: Seen) -> Reply:
        for method, path_end, script in self.routes:
            if method in (seen.method, "*") and seen.path.rstrip("/").endswith(path_end):
                return script(seen) if callable(script) else script
        return Reply(404, '{"message": "not scripted"}')

    def requests_to(self, path_end: str) -> list[Seen]:
        return [s for s in self.seen if s.path.rstrip("/").endswith("/" + path_end.strip("/"))]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)


def _handler(server: HostileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            seen = Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
            server.record(seen)
            reply = server.reply_for(seen)
            with suppress(OSError):  # the client gave up (deadline, closed socket): fine
                self._answer(reply)
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def _answer(self, reply: Reply) -> None:
            data = reply.data
            head = [f"HTTP/1.1 {reply.status} Scripted\r\n", f"Content-Type: {reply.content_type}\r\n"]
            head += [f"{k}: {v}\r\n" for k, v in reply.headers.items()]
            head.append(
                "Transfer-Encoding: chunked\r\n" if reply.chunked else f"Content-Length: {len(data)}\r\n"
            )
            head.append("Connection: close\r\n\r\n")
            header_bytes = "".join(head).encode("latin-1")
            if reply.trickle_headers and reply.trickle:
                self._trickle(header_bytes, reply.trickle)
            else:
                self.wfile.write(header_bytes)
            if reply.chunked:
                data = (
                    b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in _pieces(data)) + b"0\r\n\r\n"
                )
            if reply.cut_after is not None:
                self.wfile.write(data[: reply.cut_after])
                self.wfile.flush()
                return
            if reply.trickle:
                self._trickle(data, reply.trickle)
            else:
                self.wfile.write(data)
            self.wfile.flush()

        def _trickle(self, data: bytes, every: float) -> None:
            for byte in data:
                if server.stopping.is_set():
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(every)

    return Handler


def _pieces(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@contextmanager
def run_hostile() -> Iterator[HostileServer]:
    """A started :class:`HostileServer`, shut down (trickles stopped) on exit."""
    server = HostileServer()
    thread = threading.Thread(target=server._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server._httpd.shutdown()
        server._httpd.server_close()
        thread.join(timeout=5)
