"""A real project seeded with hostile tasks: API paths, other origins, failing origins, symlinks, a bomb.

One pull and one validate over it; each test checks one case. The token must reach nothing but
the server's image routes, and every bad task must be rejected alone, with its reason.
"""

from __future__ import annotations

import io
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.core.params import LabelStudioParams, PullParams, ValidateParams
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.stages import pull, validate
from tests import imagefiles, lsproject
from tests.origin import Answer, serving
from tests.stages.test_pull_validate import BASE, LS_PARAMS

pytestmark = pytest.mark.labelstudio


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((lsproject.HEIGHT, lsproject.WIDTH, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _routes(ls_url: str) -> dict[str, Answer]:
    png = {"Content-Type": "image/png"}
    return {
        "/ok.png": Answer(200, _png(10), png),
        "/gone.png": Answer(410, b"gone", {"Content-Type": "text/plain"}),
        "/redirect-api": Answer(302, b"", {"Location": f"{ls_url}/api/current-user/token"}),
        "/loop-a": Answer(302, b"", {"Location": "/loop-b"}),
        "/loop-b": Answer(302, b"", {"Location": "/loop-a"}),
        "/hop": Answer(302, b"", {"Location": "/moved.png"}),
        "/moved.png": Answer(200, _png(20), png),
        "/page.html": Answer(200, b"<html>login</html>", {"Content-Type": "text/html"}),
        "/token.json": Answer(200, b'{"token": "x"}', {"Content-Type": "application/json"}),
        "/fake.png": Answer(200, b"<html>not a png</html>", png),
        "/stall.png": Answer(stall=True),
    }


ORIGIN_CASES = {  # route -> words the task's error must hold (besides the URL)
    "/gone.png": "HTTP 410",
    "/redirect-api": "not where images live",
    "/loop-a": "redirect loop",
    "/page.html": "text/html",
    "/token.json": "application/json",
    "/fake.png": "not a PNG",
    "/stall.png": "Timeout",
}
SERVER_PATHS = [
    "/api/current-user/token",
    "/api/users/",
    "/data/upload/%2e%2e/%2e%2e/api/users/",
    "/api/projects/",
    "/user/account",
    "/data/local-files/?d=a.png&d=../b.png",
]


@pytest.fixture(scope="module")
def hostile(label_studio: server.RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = label_studio.document_root / "hostile"
    folder.mkdir()
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    cv2.imwrite(str(outside), np.full((8, 8, 3), 99, np.uint8))
    os.symlink(outside, folder / "link.png")
    imagefiles.png_bomb(folder / "bomb.png")
    with (
        serving(_routes(label_studio.url)) as origin,
        LabelStudioClient(label_studio.url, label_studio.credentials.token) as client,
    ):
        built = lsproject.create_project(client, folder, "hostile tasks", count=2)
        references = {
            "good0": None,
            "good1": None,
            **{path: path for path in SERVER_PATHS},
            **{route: origin.url + route for route in [*ORIGIN_CASES, "/ok.png", "/hop"]},
            "other_origin": f"http://127.0.0.1:{server.free_port()}/x.png",
            "symlink": f"/data/local-files/?d={folder.name}/link.png",
            "bomb": f"/data/local-files/?d={folder.name}/bomb.png",
        }
        extra = [name for name in references if references[name] is not None]
        ids = dict(zip(["good0", "good1"], built.task_ids))
        ids.update(zip(extra, client.import_tasks(built.id, [{"image": references[name]} for name in extra])))
        for name in ("good0", "good1", "bomb", "/api/current-user/token"):
            truth = lsproject.scene(0)[1]
            client.create_annotation(ids[name], lsproject.brush_annotation(ids[name], truth), built.users["ann1"])
        out = tmp_path_factory.mktemp("hostile_out")
        with pytest.MonkeyPatch.context() as patch:
            for key, value in label_studio.env().items():
                patch.setenv(key, value)
            patch.setenv("SEGPIPE_ORIGIN_HEADERS", json.dumps({origin.url: {"X-Origin-Key": "for-the-origin-only"}}))
            patch.setattr(
                LabelStudioClient,
                "from_env",
                classmethod(
                    lambda cls, **kw: cls(
                        label_studio.url, label_studio.credentials.token, timeout_s=2, retry_total_s=2
                    )
                ),
            )
            pull.run(
                out / "raw",
                out / "images",
                LabelStudioParams(project=built.id),
                PullParams(allowed_origins=(origin.url,), workers=4),
            )
        requests = list(origin.requests)
    validate.run(
        out / "raw",
        out / "images",
        out / "annotations",
        out / "validation.json",
        BASE,
        LS_PARAMS,
        ValidateParams(unpainted=None, workers=1),
    )
    records = {task["id"]: image for task, image in pull.snapshot_records(out / "raw")}
    report = {t["task_id"]: t for t in json.loads((out / "validation.json").read_text())["tasks"]}
    return {
        "ids": ids,
        "records": records,
        "report": report,
        "requests": requests,
        "origin": origin.url,
        "out": out,
        "token": label_studio.credentials.token,
    }


@pytest.mark.parametrize("path", SERVER_PATHS)
def test_server_paths_that_are_not_images_are_refused(hostile: dict, path: str) -> None:
    record = hostile["records"][hostile["ids"][path]]
    assert "file" not in record and "refused" in record["error"]


@pytest.mark.parametrize("route", sorted(ORIGIN_CASES))
def test_a_failing_origin_rejects_only_its_task_naming_status_and_url(hostile: dict, route: str) -> None:
    record = hostile["records"][hostile["ids"][route]]
    assert "file" not in record
    assert ORIGIN_CASES[route] in record["error"] and hostile["origin"].split("//")[1] in record["error"]
    assert hostile["report"][hostile["ids"][route]]["fate"] == "rejected"


def test_images_on_allowed_origins_and_same_rule_redirects_are_fetched(hostile: dict) -> None:
    for name in ("/ok.png", "/hop", "good0", "good1"):
        assert hostile["records"][hostile["ids"][name]].get("file"), name
    assert hostile["report"][hostile["ids"]["good0"]]["fate"] == "ok"


def test_other_origins_are_refused(hostile: dict) -> None:
    assert "pull.allowed_origins" in hostile["records"][hostile["ids"]["other_origin"]]["error"]


def test_token_goes_to_no_other_origin_and_origin_headers_only_there(hostile: dict) -> None:
    assert hostile["requests"], "the origin was asked nothing"
    for path, headers in hostile["requests"]:
        lowered = {key.lower(): value for key, value in headers.items()}
        assert "authorization" not in lowered and "cookie" not in lowered, path
        assert not any(hostile["token"] in value for value in headers.values()), path
        assert lowered.get("x-origin-key") == "for-the-origin-only"


def test_symlink_leaving_the_document_root_is_refused_through_the_server(hostile: dict) -> None:
    record = hostile["records"][hostile["ids"]["symlink"]]
    assert "file" not in record and "outside the document root" in record["error"]


def test_bomb_rejects_its_task_and_nothing_else(hostile: dict) -> None:
    bomb = hostile["report"][hostile["ids"]["bomb"]]
    assert bomb["fate"] == "rejected" and "budget" in bomb["reason"]
    assert [a["fate"] for a in bomb["annotations"]] == ["rejected"]
    assert all(hostile["report"][hostile["ids"][name]]["fate"] == "ok" for name in ("good0", "good1"))


def test_token_reaches_no_output(hostile: dict) -> None:
    token = hostile["token"].encode()
    for path in hostile["out"].rglob("*"):
        if path.is_file():
            assert token not in path.read_bytes(), path
