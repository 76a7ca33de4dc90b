"""Review in a real browser: Debian's Chromium, driven by Playwright, opens a pre-annotated task."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.results import label_map_to_brush_results
from pipeline.mlbackend.connect import connect
from pipeline.model.predictor import load_predictor, predict_files
from tests import lsproject
from tests.mlbackend.helpers import live_backend, task_predictions, write_checkpoint

pytestmark = pytest.mark.labelstudio
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Offline machine: no background connections, no sandbox as root, software rendering.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _logged_in_page(browser, label_studio: server.RunningServer):
    """A page logged in as the admin that may talk to 127.0.0.1 only; returns (page, blocked URLs)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    blocked: list[str] = []

    def local_only(route) -> None:  # the test talks to 127.0.0.1 and nothing else
        if route.request.url.startswith(label_studio.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(f"{label_studio.url}/user/login/")
    page.fill("input[name=email]", label_studio.credentials.email)
    page.fill("input[name=password]", label_studio.credentials.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url)
    return page, blocked


@pytest.fixture(scope="module")
def review_server(tmp_path_factory: pytest.TempPathFactory):
    """A Label Studio started as `serve` starts it by default: without --local-ml-backends.

    Reviewers of batch pre-annotations need no ML backend, so this is the server they would run;
    the live path is tested on the session's server, which may call backends on 127.0.0.1.
    """
    data_dir = tmp_path_factory.mktemp("review-server")
    running = server.start(data_dir=data_dir, port=server.free_port(), document_root=data_dir / "files")
    yield running
    server.stop(data_dir)


@pytest.mark.xfail(
    reason="intermittent (about one run in three): Label Studio 1.23.2's editor sometimes opens an empty "
    "annotation instead of one pre-filled from the prediction, while the API holds the prediction",
    strict=False,
)
def test_reviewer_sees_the_predicted_regions_in_the_editor(
    review_server: server.RunningServer, browser, tmp_path: Path
) -> None:
    label_studio = review_server
    project_files = label_studio.document_root / "review"
    project_files.mkdir(parents=True, exist_ok=True)
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        built = lsproject.create_project(client, project_files, "browser review", count=1)
        task_id = built.task_ids[0]
        truth = lsproject.scene(0)[1]
        result = label_map_to_brush_results(
            truth, lsproject.CLASSES, task_id=task_id, from_name="brush", to_name="image"
        )
        client.import_predictions(
            built.id, [{"task": task_id, "model_version": "unet-0badcafe", "score": 0.42, "result": result}]
        )
        client.set_model_version(built.id, "unet-0badcafe")

    page, blocked = _logged_in_page(browser, label_studio)
    page.goto(f"{label_studio.url}/projects/{built.id}/data?task={task_id}")
    titles = page.locator(".lsf-outliner-item__title")
    screenshot = tmp_path / "editor-with-prediction.png"
    try:
        titles.first.wait_for(timeout=60_000)
        page.get_by_text("unet-0badcafe").first.wait_for(timeout=10_000)
    except Exception as error:  # say what the editor showed and what the server holds
        page.screenshot(path=str(screenshot))
        with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
            held = task_predictions(client, built.id)
        raise AssertionError(f"editor showed no prediction (screenshot {screenshot}); server holds {held}") from error
    page.screenshot(path=str(screenshot))
    assert sorted(t.strip() for t in titles.all_inner_texts()) == sorted(lsproject.CLASSES)
    assert screenshot.read_bytes()[:4] == b"\x89PNG"
    print(f"screenshot: {screenshot}; requests kept from leaving the machine: {len(blocked)}")


def test_opening_a_task_shows_the_live_prediction(
    label_studio: server.RunningServer, project_files: Path, browser, tmp_path: Path
) -> None:
    checkpoint = write_checkpoint(tmp_path / "best.pt", seed=3)
    with live_backend(label_studio, checkpoint, tmp_path) as live:
        built = lsproject.create_project(live.client, project_files, "browser live", count=1)
        task_id = built.task_ids[0]
        version = live.backend.model.announce()
        connect(live.client, built.id, live.url, version)
        assert task_predictions(live.client, built.id)[task_id] == []  # no batch prediction
        predictor = load_predictor(checkpoint, lsproject.CLASSES, None, "cpu", 1)
        [record] = predict_files(predictor, [project_files / "seq0_000.png"], [task_id], "brush", "image")
        expected = sorted(region["value"]["brushlabels"][0] for region in record["result"])
        page, _ = _logged_in_page(browser, label_studio)
        page.goto(f"{label_studio.url}/projects/{built.id}/data?task={task_id}")
        titles = page.locator(".lsf-outliner-item__title")
        titles.first.wait_for(timeout=60_000)
        page.get_by_text(version).first.wait_for(timeout=10_000)
        page.screenshot(path=str(tmp_path / "editor-with-live-prediction.png"))
        assert sorted(t.strip() for t in titles.all_inner_texts()) == expected
        assert httpx.get(f"{live.url}/status").json()["predict_requests"] >= 1  # opening the task asked the backend
        stored = task_predictions(live.client, built.id)[task_id]  # the editor may load a task twice: one each
        assert stored and {p["model_version"] for p in stored} == {version}
