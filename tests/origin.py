"""A small HTTP origin on 127.0.0.1 that records every request it gets and answers from a route table."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False  # never answer (until the origin shuts down): a timeout for the client


class Origin(ThreadingHTTPServer):
    """Routes: path (with query) -> Answer; unknown paths answer 404. `requests`: (path, headers) received."""

    daemon_threads = True

    def __init__(self, routes: dict[str, Answer] | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = dict(routes or {})
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.released = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        origin: Origin = self.server
        origin.requests.append((self.path, dict(self.headers.items())))
        answer = origin.routes.get(self.path, Answer(404, b"not here", {"Content-Type": "text/plain"}))
        if answer.stall:
            origin.released.wait()
            return
        self.send_response(answer.status)
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serving(routes: dict[str, Answer] | None = None) -> Iterator[Origin]:
    origin = Origin(routes)
    thread = threading.Thread(target=origin.serve_forever, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        origin.released.set()
        origin.shutdown()
        origin.server_close()
