"""The local server component: health, login, busy ports, stop by PID."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from pipeline.core.errors import ServerError
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
            data={
                "email": label_studio.credentials.email,
                "password": label_studio.credentials.password,
                "csrfmiddlewaretoken": csrf,
            },
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


def test_serve_command_starts_prints_login_and_stops_by_pid(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    port, data_dir = server.free_port(), tmp_path / "ls"
    command = [sys.executable, "-m", "pipeline", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    started = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr
    credentials = json.loads((data_dir / "credentials.json").read_text())
    assert f"http://127.0.0.1:{port}" in started.stderr and credentials["password"] in started.stderr
    pid = json.loads((data_dir / "server.pid").read_text())["pid"]
    exported = subprocess.run([*command, "--env"], capture_output=True, text=True, timeout=60).stdout
    assert f"export LABEL_STUDIO_URL=http://127.0.0.1:{port}" in exported and credentials["token"] in exported
    stopped = subprocess.run([*command, "--stop"], capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    assert not server.is_healthy(f"http://127.0.0.1:{port}")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert server.port_is_free("127.0.0.1", port)
