"""Property tests over the export reader and the image-reference resolver / fetcher.

Whatever comes in: only the project's errors come out, nothing is written outside the output
folders, and no credential appears in any output or reaches any origin but the server.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.core.errors import PipelineError, UnsafeReferenceError
from pipeline.core.params import PullParams, ValidateParams
from pipeline.labelstudio.export_reader import check_item, iter_items
from pipeline.labelstudio.fetch import FetchSettings, ImageFetcher
from pipeline.labelstudio.references import origin_of, resolve
from pipeline.stages import pull, validate
from tests.origin import serving
from tests.stages.test_export_items import BASE
from tests.stages.test_export_items import LS as LS_PARAMS

TOKEN = "f" * 40
LS = "http://127.0.0.1:8999"
ALLOWED = "http://127.0.0.1:9001"
EVIL = "http://127.0.0.1:9002"
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

SCHEMES = st.sampled_from(
    ["", "http://", "https://", "HTTP://", "s3://", "gs://", "data:", "file://", "javascript:", "//", "ftp://"]
)
HOSTS = st.sampled_from(
    [
        "127.0.0.1:8999",
        "127.0.0.1:9001",
        "127.0.0.1:9002",
        "127.0.0.1",
        "user:pw@127.0.0.1:8999",
        "127.0.0.1:8999@127.0.0.1:9002",
        "[::1]:8999",
        "127.0.0.1:99999",
        "localhost:8999",
        "",
    ]
)
PATHS = st.sampled_from(
    [
        "/data/upload/1/a.png",
        "/data/local-files/",
        "/data/local-files",
        "/api/current-user/token",
        "/api/users/",
        "/tasks/1/resolve/",
        "/projects/2/presign/",
        "/data/upload/../../api/users/",
        "/data/upload/%2e%2e/%2e%2e/api/users",
        "/data/upload/%2F..%2Fapi",
        "/data/upload/",
        "/x.png",
        "/data//upload/1/a.png",
        "\\data\\upload\\a.png",
        "/user/login",
    ]
) | st.text(max_size=20)
QUERIES = st.sampled_from(
    [
        "",
        "?d=a.png",
        "?d=../etc/passwd",
        "?d=/etc/passwd",
        "?d=a%2F..%2F..%2Fb",
        "?d=a&d=b",
        "?fileuri=czM6Ly9iL2sucG5n",
        "?d=a.png#frag",
        "?token=secret",
        "?d=link/x.png&x=1",
    ]
) | st.text(max_size=12)
REFERENCES = (
    st.builds(lambda s, h, p, q: s + h + p + q, SCHEMES, HOSTS, PATHS, QUERIES)
    | st.text(max_size=60)
    | st.none()
    | st.integers()
    | st.lists(st.text(max_size=3), max_size=2)
)


@FUZZ
@given(reference=REFERENCES, task_id=st.none() | st.integers(0, 10))
def test_resolver_gives_only_allowed_targets_or_its_own_error(reference, task_id) -> None:
    try:
        target = resolve(reference, LS, (ALLOWED,), task_id)
    except UnsafeReferenceError:
        return
    origin = origin_of(target.url)
    assert origin in (LS, ALLOWED)
    assert "@" not in target.url.split("//", 1)[1].split("/", 1)[0]
    if target.send_token:
        assert origin == LS and target.kind in ("upload", "local-files", "storage")
        assert "/api/" not in target.url.split("?")[0]
    else:
        assert target.kind == "external" and origin == ALLOWED
    if target.local_path is not None:
        assert not target.local_path.startswith("/") and ".." not in target.local_path.split("/")


@pytest.fixture(scope="module")
def origins():
    with serving() as allowed, serving() as evil, serving() as fake_server:
        yield allowed, evil, fake_server


@FUZZ
@given(pieces=st.tuples(SCHEMES, st.sampled_from(["allowed", "evil", "server"]), PATHS, QUERIES))
def test_fetcher_sends_the_token_only_to_the_server_and_raises_only_its_errors(origins, pieces) -> None:
    allowed, evil, fake_server = origins
    scheme, which, path, query = pieces
    host = {"allowed": allowed, "evil": evil, "server": fake_server}[which].url.split("//")[1]
    settings_ = FetchSettings(
        ls_url=fake_server.url,
        ls_headers={"Authorization": f"Token {TOKEN}"},
        allowed_origins=(allowed.url,),
        timeout_s=2,
        retry_total_s=0,
    )
    with ImageFetcher(settings_) as fetcher:
        try:
            fetcher.fetch(scheme + host + path + query)
        except PipelineError:
            pass
    assert not evil.requests
    for _, headers in allowed.requests:
        assert TOKEN not in json.dumps(headers)
    for path_asked, _ in fake_server.requests:
        assert not path_asked.startswith("/api/")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "data", "annotations", "predictions", "completed_by", "result", "image", "x"])
            | st.text(max_size=4),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)
TASKS = st.fixed_dictionaries(
    {
        "id": st.integers(-3, 50) | JSON,
        "data": st.just({"image": "/data/local-files/?d=a.png"}) | JSON,
        "annotations": st.lists(
            st.fixed_dictionaries({"id": st.integers(0, 9) | JSON, "completed_by": JSON, "result": JSON}), max_size=3
        )
        | JSON,
    }
)


def _encode(items: list) -> bytes:
    return ("[" + ",".join(json.dumps(item, allow_nan=True) for item in items) + "]").encode()


@FUZZ
@given(items=st.lists(TASKS | JSON, max_size=4))
def test_export_reader_yields_clean_tasks_or_reasons(items) -> None:
    for position, (item, strict) in enumerate(iter_items(io.BytesIO(_encode(items)), Path("export.json"))):
        checked = check_item(position, item, strict)
        assert checked.task is not None or checked.problem
        if checked.task is not None:
            orjson.loads(orjson.dumps(checked.task))
            json.dumps(checked.task, allow_nan=False)


@FUZZ
@given(data=st.binary(max_size=80) | st.text(max_size=80).map(str.encode))
def test_export_reader_on_any_bytes_raises_only_its_error(data) -> None:
    try:
        for position, (item, strict) in enumerate(iter_items(io.BytesIO(data), Path("export.json"))):
            check_item(position, item, strict)
    except PipelineError:
        pass


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(TASKS, min_size=1, max_size=3))
def test_hostile_exports_through_pull_and_validate_write_only_outputs(tmp_path_factory, items) -> None:
    work = tmp_path_factory.mktemp("fuzz")
    root = work / "files"
    root.mkdir()
    (root / "a.png").write_bytes(_PNG)
    (work / "export.json").write_bytes(_encode(items))
    before = set(work.rglob("*"))
    try:
        pull.run(
            work / "raw",
            work / "images",
            LS_PARAMS,
            PullParams(export_file=str(work / "export.json"), document_root=str(root), workers=1),
        )
    except PipelineError:
        return  # duplicate task ids: the whole export is refused, with the ids named
    validate.run(
        work / "raw",
        work / "images",
        work / "out",
        work / "reports" / "validation.json",
        BASE,
        LS_PARAMS,
        ValidateParams(unpainted=None, workers=1),
    )
    outputs = ("raw", "images", "out", "reports")
    for path in set(work.rglob("*")) - before:
        assert path.relative_to(work).parts[0] in outputs, path
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes()
    report = json.loads((work / "reports" / "validation.json").read_text())
    assert report["counts"]["tasks"] == len(items)


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


_PNG = _png_bytes()
