"""Prediction pushes through a proxy to the real server: a lost answer is never a duplicate; stale ones go in bulk."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.predictions import push_predictions
from tests.labelstudio.test_faults import FlakyProxy, ProxyHandler
from tests.stages.test_preannotate import _predictions, _project, _run

pytestmark = pytest.mark.labelstudio


class LosingHandler(ProxyHandler):
    """Forwards everything; the first prediction import reaches the server, its answer is dropped."""

    def _forward(self) -> None:
        proxy: RecordingProxy = self.server
        proxy.log.append((self.command, self.path.split("?")[0]))
        if "import/predictions" in self.path and not proxy.lost:
            proxy.lost = True
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            httpx.request(self.command, proxy.upstream + self.path, headers=headers, content=body, timeout=60)
            self.close_connection = True  # committed upstream, and the client never hears about it
            return
        super()._forward()

    do_GET = do_POST = do_PATCH = do_DELETE = _forward


class RecordingProxy(FlakyProxy):
    def __init__(self, upstream: str):
        super().__init__(upstream, failures=0)
        self.RequestHandlerClass = LosingHandler
        self.lost, self.log = False, []


@pytest.fixture
def proxy(label_studio: server.RunningServer) -> Iterator[RecordingProxy]:
    running = RecordingProxy(label_studio.url)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()


def test_lost_answer_to_an_import_does_not_duplicate(label_studio, proxy, tmp_path, monkeypatch) -> None:
    case = _project(label_studio, "lost_answer", count=4, labelled=0, tmp=tmp_path)
    monkeypatch.setattr(
        LabelStudioClient,
        "from_env",
        classmethod(lambda cls, **kw: cls(proxy.url, label_studio.credentials.token, retry_total_s=20)),
    )
    summary = _run(case, label_studio, monkeypatch)
    assert proxy.lost and summary["predictions_pushed"] == 4
    found = _predictions(label_studio, case["built"].id)
    assert [len(found[task]) for task in case["built"].task_ids] == [1, 1, 1, 1]
    imports = [entry for entry in proxy.log if entry[0] == "POST" and "import/predictions" in entry[1]]
    assert len(imports) == 1  # the server already held them all: nothing was sent again


def test_stale_predictions_are_deleted_in_bulk(label_studio, proxy, tmp_path, monkeypatch) -> None:
    case = _project(label_studio, "bulk_delete", count=5, labelled=0, tmp=tmp_path)
    _run(case, label_studio, monkeypatch)
    first = _predictions(label_studio, case["built"].id)
    version = first[case["built"].task_ids[0]][0]["model_version"]
    records = [
        {"task": task, "result": p[0]["result"], "score": 0.125, "model_version": version} for task, p in first.items()
    ]
    proxy.lost = True  # nothing to lose here: count the requests
    with LabelStudioClient(proxy.url, label_studio.credentials.token) as client:
        push_predictions(client, case["built"].id, version, records, batch_size=100)
    per_prediction = [entry for entry in proxy.log if entry[0] == "DELETE" and entry[1].startswith("/api/predictions/")]
    bulk = [entry for entry in proxy.log if entry == ("POST", "/api/dm/actions")]
    assert per_prediction == [] and len(bulk) == 1
    again = _predictions(label_studio, case["built"].id)
    assert all(len(p) == 1 and p[0]["score"] == pytest.approx(0.125) for p in again.values())
    assert {p[0]["id"] for p in again.values()}.isdisjoint({p[0]["id"] for p in first.values()})
