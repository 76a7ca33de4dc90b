"""Transient faults between the pipeline and a real Label Studio: a flaky proxy on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pipeline.core.errors import LabelStudioError
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient

pytestmark = pytest.mark.labelstudio


class FlakyProxy(ThreadingHTTPServer):
    """Forwards to the real server, but answers the first `failures` requests with 503."""

    daemon_threads = True

    def __init__(self, upstream: str, failures: int):
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream, self.failures, self.seen = upstream, failures, 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(BaseHTTPRequestHandler):
    def _forward(self) -> None:
        proxy: FlakyProxy = self.server
        proxy.seen += 1
        if proxy.seen <= proxy.failures:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        answer = httpx.request(self.command, proxy.upstream + self.path, headers=headers, content=body, timeout=60)
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def flaky(label_studio: server.RunningServer, request: pytest.FixtureRequest) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(label_studio.url, failures=request.param)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()


@pytest.mark.parametrize("flaky", [2], indirect=True)
def test_transient_5xx_are_retried(flaky: FlakyProxy, label_studio: server.RunningServer) -> None:
    with LabelStudioClient(flaky.url, label_studio.credentials.token, retry_total_s=30) as client:
        project = client.create_project("through a flaky proxy", "<View><Image name='image' value='$image'/></View>")
    assert project.id > 0 and flaky.seen == 3


@pytest.mark.parametrize("flaky", [10_000], indirect=True)
def test_persistent_5xx_give_up_in_bounded_time_with_a_clear_error(
    flaky: FlakyProxy, label_studio: server.RunningServer
) -> None:
    started = time.monotonic()
    with LabelStudioClient(flaky.url, label_studio.credentials.token, retry_total_s=2) as client:
        with pytest.raises(LabelStudioError, match=f"{flaky.url} answered HTTP 503") as caught:
            client.find_project(1)
    assert time.monotonic() - started < 15 and flaky.seen > 1
    assert label_studio.credentials.token not in str(caught.value)


def test_retry_message_reports_the_time_actually_spent() -> None:
    # A listening socket nobody answers on: every request lasts its whole timeout, longer than the retry budget.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with LabelStudioClient(url, "0" * 40, timeout_s=1.5, retry_total_s=0.1) as client:
            with pytest.raises(LabelStudioError, match="after retrying for") as caught:
                client.find_project(1)
        reported = float(re.search(r"after retrying for ([\d.]+) s", str(caught.value)).group(1))
        assert reported >= 1.5  # at least one whole request timeout went by, whatever the retry budget says
    finally:
        silent.close()
