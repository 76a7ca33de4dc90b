"""pipeline.core.taskmap: framing, backend choice, and byte-identical stage outputs on local processes and Dask."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.core.errors import PipelineError
from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams, MergeParams, PullParams, ValidateParams
from pipeline.core.taskmap import SCHEDULER_ENV, DaskBackend, LocalBackend, choose_backend, pack, unpack
from pipeline.demo.synthetic import CLASSES
from pipeline.stages import merge, pull, validate
from tests.exports import write_export

BASE = BaseParams(0, 255, tuple(ClassInfo(n, (0, 0, 0)) for n in CLASSES))
LS = LabelStudioParams(project=0, control_tags=("brush", "polygon"))


def reverse_bytes(payload: bytes) -> bytes:
    return payload[::-1]


def fail_on_seven(payload: bytes) -> bytes:
    if payload == b"7":
        raise ValueError("seven")
    return payload


def test_pack_round_trips_named_parts_in_order():
    parts = {"line": b'{"id": 1}', "empty": b"", "file:3/u1.png": bytes(range(256))}
    assert unpack(pack(parts)) == parts
    assert list(unpack(pack(parts))) == list(parts)


@pytest.mark.parametrize(
    "damage", [lambda b: b[:-1], lambda b: b + b"x", lambda b: b"\xff\xff\xff\x7f" + b[4:], lambda b: b""]
)
def test_damaged_frames_are_a_clear_error(damage):
    with pytest.raises(PipelineError, match="worker's message"):
        unpack(damage(pack({"a": b"123", "b": b"45"})))


def test_backend_comes_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert isinstance(choose_backend(None, 3), LocalBackend) and choose_backend(None, 3).workers == 3
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://127.0.0.1:1")
    assert choose_backend(None, 3).address == "tcp://127.0.0.1:1"
    assert choose_backend("tcp://127.0.0.1:2", 3).address == "tcp://127.0.0.1:2"


@pytest.mark.parametrize("workers", [1, 2])
def test_local_backend_keeps_order_and_counts_traffic(workers):
    backend = LocalBackend(workers, batch=3)
    payloads = [str(i).encode() * (i % 5 + 1) for i in range(50)]
    assert list(backend.map(reverse_bytes, payloads)) == [p[::-1] for p in payloads]
    assert backend.traffic.tasks == 50 and backend.traffic.sent == backend.traffic.received == sum(map(len, payloads))


def test_an_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("distributed")
    from pipeline.labelstudio.server import free_port

    with pytest.raises(PipelineError, match="cannot reach the Dask scheduler"):
        list(DaskBackend(f"tcp://127.0.0.1:{free_port()}").map(reverse_bytes, [b"a"]))


def _snapshot(tmp_path: Path, count: int) -> tuple[Path, Path]:
    """A pulled snapshot of `count` tasks (one to three simulated annotators each) from an export file."""
    export, root = write_export(tmp_path, count)
    pull.run(
        tmp_path / "raw",
        tmp_path / "images",
        LS,
        PullParams(export_file=str(export), document_root=str(root), workers=2),
    )
    return tmp_path / "raw", tmp_path / "images"


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _validate_and_merge(raw: Path, images: Path, out: Path, workers: int, scheduler: str | None, method: str) -> dict:
    validate.run(
        raw,
        images,
        out / "annotations",
        out / "validation.json",
        BASE,
        LS,
        ValidateParams(workers=workers),
        scheduler=scheduler,
    )
    merge.run(
        out / "annotations",
        out / "validation.json",
        out / "labels",
        out / "agreement.json",
        BASE,
        MergeParams(method=method, workers=workers),
        scheduler=scheduler,
    )
    return _digest(out)


@pytest.mark.parametrize("method", ["dawid_skene", "staple"])
def test_outputs_are_byte_identical_on_every_backend(tmp_path, monkeypatch, method):
    """One process, two local processes and a Dask LocalCluster of two worker processes agree byte for byte."""
    distributed = pytest.importorskip("distributed")
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    raw, images = _snapshot(tmp_path, 30)
    single = _validate_and_merge(raw, images, tmp_path / "one", 1, None, method)
    consensus_maps = [name for name in single if name.startswith("labels/") and name.count("/") == 1]
    assert len(consensus_maps) == 30  # every annotated task merged (beside labels/confidence/)
    assert _validate_and_merge(raw, images, tmp_path / "two", 2, None, method) == single
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            assert len(client.scheduler_info()["workers"]) == 2
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)  # the way a deployment chooses it
        assert _validate_and_merge(raw, images, tmp_path / "dask", 0, None, method) == single
        backend = DaskBackend(cluster.scheduler_address, batch=2)
        payloads = [str(i).encode() * 50 for i in range(40)]
        assert list(backend.map(reverse_bytes, payloads)) == [p[::-1] for p in payloads]
        assert not backend._client.scheduler_comm.recent_message_log  # sent batches are not kept
        with pytest.raises(ValueError, match="seven"):  # a worker's error reaches the driver
            list(backend.map(fail_on_seven, [str(i).encode() for i in range(20)]))
        backend.close()
