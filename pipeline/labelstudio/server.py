"""Start and stop a local Label Studio server: SQLite (or PostgreSQL), 127.0.0.1, no calls to the internet.

The server keeps everything in one data folder (default `.labelstudio/`, git-ignored):
the SQLite database, uploaded media, `server.log`, `server.pid` and `credentials.json`
(admin e-mail, password and API token, mode 0600, created once at the first start and
reused afterwards so that a person can log in again). The pipeline stages never read that
file: they take `LABEL_STUDIO_URL` and `LABEL_STUDIO_API_KEY` from the environment, which
`python -m pipeline serve --env` prints for `eval`.

With `database="postgresql://user@host:port/name"` the server keeps its tables in that
PostgreSQL database instead (media, log and login stay in the data folder). A password is
taken from the URL or, better, from `PGPASSWORD` in the environment; it is never recorded.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from pipeline.core.errors import ServerError

DEFAULT_DATA_DIR = Path(".labelstudio")
DEFAULT_PORT = 8080
ADMIN_EMAIL = "admin@localhost"
# The first start runs all Django migrations (about 20 s on 2 idle cores, minutes on busy ones);
# later starts take seconds.
START_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Credentials:
    """Login of the local server's admin; `token` is a legacy 40-hex API token."""

    email: str
    password: str
    token: str


@dataclass(frozen=True)
class RunningServer:
    """A healthy local server: where it listens, who can log in, which process it is."""

    url: str
    pid: int
    credentials: Credentials
    data_dir: Path
    document_root: Path
    local_ml_backends: bool = False  # may call ML backends on 127.0.0.1

    def env(self) -> dict[str, str]:
        """The variables the pipeline reads to reach this server (and to check local-files paths here)."""
        return {
            "LABEL_STUDIO_URL": self.url,
            "LABEL_STUDIO_API_KEY": self.credentials.token,
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.document_root.resolve()),
        }


def find_label_studio() -> Path:
    """The `label-studio` executable: $LABEL_STUDIO_BIN, beside this Python, or on PATH."""
    candidates = [os.environ.get("LABEL_STUDIO_BIN"), str(Path(sys.executable).with_name("label-studio"))]
    candidates.append(shutil.which("label-studio"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ServerError(
        "label-studio is not installed in this environment. Install it with "
        "`pip install -e '.[server]'` (label-studio==1.23.2), or point LABEL_STUDIO_BIN at an "
        "existing `label-studio` executable."
    )


def load_or_create_credentials(data_dir: Path) -> Credentials:
    """Read `credentials.json` from the data folder, creating it (mode 0600) on first use."""
    path = data_dir / "credentials.json"
    if path.exists():
        try:
            return Credentials(**json.loads(path.read_text()))
        except (ValueError, TypeError) as error:
            raise ServerError(
                f"{path} is not a credentials file ({error}); delete the folder {data_dir} to start afresh"
            ) from error
    data_dir.mkdir(parents=True, exist_ok=True)
    credentials = Credentials(ADMIN_EMAIL, secrets.token_urlsafe(12), secrets.token_hex(20))
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(credentials.__dict__, handle)
    temporary.replace(path)
    return credentials


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (Label Studio would silently move to port+1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free right now (for tests and parallel servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def database_environment(database: str | None) -> dict[str, str]:
    """Label Studio's database variables for a `postgresql://user[:password]@host:port/name` URL, or SQLite."""
    if not database:
        return {"DJANGO_DB": "sqlite"}
    parts = urlsplit(database)
    name = unquote(parts.path.lstrip("/"))
    try:
        port = parts.port or 5432
    except ValueError:
        port = None
    if (
        parts.scheme not in ("postgresql", "postgres")
        or not parts.hostname
        or not name
        or not parts.username
        or port is None
    ):
        raise ServerError(f"--database must look like postgresql://USER@HOST:PORT/NAME, got {redact(database)!r}")
    return {
        "DJANGO_DB": "postgresql",
        "POSTGRE_NAME": name,
        "POSTGRE_USER": unquote(parts.username),
        "POSTGRE_PASSWORD": unquote(parts.password or "") or os.environ.get("PGPASSWORD", ""),
        "POSTGRE_HOST": parts.hostname,
        "POSTGRE_PORT": str(port),
    }


def redact(database: str) -> str:
    """A database URL without its password, for records and messages."""
    parts = urlsplit(database)
    if parts.password is None:
        return database
    # SplitResult is a namedtuple: `_replace` is its documented copy-with-changes (no public other name).
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def server_environment(
    data_dir: Path,
    document_root: Path,
    credentials: Credentials,
    local_ml_backends: bool = False,
    database: str | None = None,
) -> dict[str, str]:
    """Environment for an offline, non-interactive Label Studio with a known admin and token.

    `local_ml_backends` lets the server call an ML backend on 127.0.0.1 (Label Studio refuses
    private addresses by default: `POST /api/ml/` answers 403). `database`: a PostgreSQL URL.
    """
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LABEL_STUDIO_", "POSTGRE_", "DJANGO_DB"))
    }
    environment.update(database_environment(database))
    environment.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir.resolve()),
        LABEL_STUDIO_USERNAME=credentials.email,
        LABEL_STUDIO_PASSWORD=credentials.password,
        LABEL_STUDIO_USER_TOKEN=credentials.token,
        # Without it at the first start the 40-hex token answers 401.
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(document_root.resolve()),
        LATEST_VERSION_CHECK="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        COLLECT_ANALYTICS="false",
        DEBUG="false",
    )
    if local_ml_backends:
        environment.update(ML_BLOCK_LOCAL_IP="false", SSRF_PROTECTION_ENABLED="false")
    return environment


def _pid_file(data_dir: Path) -> Path:
    return data_dir / "server.pid"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """True when `GET {url}/health` answers {"status": "UP"}."""
    try:
        response = httpx.get(f"{url}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("status") == "UP"


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.1
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(
                f"label-studio exited with code {process.returncode} before {url} became healthy; see "
                f"{log_path}:\n{_tail(log_path)}"
            )
        if is_healthy(url):
            return
        time.sleep(delay)  # polling a starting process: no event to wait on
        delay = min(delay * 1.5, 1.0)
    _terminate(process.pid)
    raise ServerError(
        f"label-studio did not answer {url}/health within {timeout:.0f} s; see {log_path}:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def running_server(data_dir: Path = DEFAULT_DATA_DIR) -> RunningServer | None:
    """The server recorded in the data folder, if its process is alive and healthy."""
    pid_path = _pid_file(data_dir)
    if not pid_path.exists():
        return None
    record = json.loads(pid_path.read_text())
    if not _process_alive(record["pid"]) or not is_healthy(record["url"]):
        return None
    return RunningServer(
        url=record["url"],
        pid=record["pid"],
        credentials=load_or_create_credentials(data_dir),
        data_dir=data_dir,
        document_root=Path(record["document_root"]),
        local_ml_backends=bool(record.get("local_ml_backends")),
    )


def start(
    data_dir: Path = DEFAULT_DATA_DIR,
    port: int = DEFAULT_PORT,
    document_root: Path | None = None,
    host: str = "127.0.0.1",
    timeout: float = START_TIMEOUT_S,
    local_ml_backends: bool = False,
    database: str | None = None,
) -> RunningServer:
    """Start label-studio in the background and wait until it is healthy.

    Reuses a healthy server already recorded in `data_dir`. Refuses a busy port instead of
    letting Label Studio drift to the next one. `local_ml_backends` allows ML backends on
    loopback (see `server_environment`). `database`: a PostgreSQL URL
    (default SQLite).
    """
    existing = running_server(data_dir)
    if existing is not None:
        if local_ml_backends and not existing.local_ml_backends:
            raise ServerError(
                f"the Label Studio running from {data_dir} was started without local ML backends allowed; "
                f"stop it (python -m pipeline serve --stop --data-dir {data_dir}) and start it again"
            )
        return existing
    if not port_is_free(host, port):
        raise ServerError(f"port {port} on {host} is busy; stop what listens there or pass another port (--port)")
    executable = find_label_studio()
    data_dir.mkdir(parents=True, exist_ok=True)
    document_root = (document_root or data_dir / "files").resolve()
    document_root.mkdir(parents=True, exist_ok=True)
    credentials = load_or_create_credentials(data_dir)
    url = f"http://{host}:{port}"
    log_path = data_dir / "server.log"
    command = [str(executable), "start", "--no-browser", "--internal-host", host, "--port", str(port)]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            env=server_environment(data_dir, document_root, credentials, local_ml_backends, database),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stop() takes its children too
        )
    _wait_healthy(url, process, log_path, timeout)
    record = {
        "pid": process.pid,
        "url": url,
        "document_root": str(document_root),
        "local_ml_backends": local_ml_backends,
        "database": redact(database) if database else "sqlite",
    }
    _pid_file(data_dir).write_text(json.dumps(record))
    return RunningServer(url, process.pid, credentials, data_dir, document_root, local_ml_backends)


def _terminate(pid: int, grace_s: float = 15.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: poll for its disappearance instead
            finished = 0 if _process_alive(pid) else pid
        if finished == pid:
            return
        time.sleep(0.1)  # waiting for a process to exit: no portable event to block on
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    """Stop the server recorded in `data_dir` by its PID; False when none was running."""
    pid_path = _pid_file(data_dir)
    if not pid_path.exists():
        return False
    pid = json.loads(pid_path.read_text())["pid"]
    alive = _process_alive(pid)
    if alive:
        _terminate(pid)
    pid_path.unlink(missing_ok=True)
    return alive
