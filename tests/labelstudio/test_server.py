"""The local server component: health, login, busy ports, stop by PID."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from pipeline.errors import ServerError
from pipeline.labelstudio import server

pytestmark = pytest.mark.labelstudio


def test_server_is_healthy_and_token_works(label_studio: server.RunningServer) -> None:
    assert server.is_healthy(label_studio.url)
    headers = {"Authorization": f"Token {label_studio.credentials.token}"}
    me = httpx.get(f"{label_studio.url}/api/current-user/whoami", headers=headers, timeout=10)
    assert me.status_code == 200
    assert me.json()["email"] == label_studio.credentials.email


def test_admin_can_log_in_from_a_browser_form(label_studio: server.RunningServer) -> None:
    with httpx.Client(base_url=label_studio.url, timeout=10) as browser:
        form = browser.get("/user/login/")
        csrf = browser.cookies.get("csrftoken")
        assert form.status_code == 200 and csrf
        answer = browser.post(
            "/user/login/",
            data={"email": label_studio.credentials.email, "password": label_studio.credentials.password, "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{label_studio.url}/user/login/"},
        )
        assert answer.status_code in (302, 303), answer.text[:300]
        assert browser.get("/api/current-user/whoami").json()["email"] == label_studio.credentials.email


def test_wrong_token_is_refused(label_studio: server.RunningServer) -> None:
    response = httpx.get(f"{label_studio.url}/api/projects", headers={"Authorization": "Token " + "0" * 40}, timeout=10)
    assert response.status_code == 401


def test_start_reuses_the_running_server(label_studio: server.RunningServer) -> None:
    again = server.start(data_dir=label_studio.data_dir, port=server.free_port())
    assert again.pid == label_studio.pid and again.url == label_studio.url


def test_busy_port_is_refused_not_replaced(tmp_path: Path) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port}"):
            server.start(data_dir=tmp_path / "ls", port=port)


def test_credentials_are_private_and_stable(tmp_path: Path) -> None:
    first = server.load_or_create_credentials(tmp_path)
    assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0
    assert server.load_or_create_credentials(tmp_path) == first
    assert len(first.token) == 40 and int(first.token, 16) >= 0


def test_stop_without_server_says_so(tmp_path: Path) -> None:
    assert server.stop(tmp_path) is False


def test_environment_is_offline_and_token_free_of_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "outer-secret")
    credentials = server.Credentials("a@localhost", "pw", "f" * 40)
    environment = server.server_environment(tmp_path, tmp_path, credentials)
    assert environment["LATEST_VERSION_CHECK"] == "false"
    assert environment["COLLECT_ANALYTICS"] == "false"
    assert environment["SENTRY_DSN"] == ""
    assert "LABEL_STUDIO_API_KEY" not in environment
