"""Run `python -m pipeline ml-backend --connect` as a background process (the demo leaves it running).

The process id, URL and log path are kept in `<folder>/backend.json`; a recorded backend that
still answers /health is reused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pipeline.core.errors import ServerError
from pipeline.labelstudio.server import free_port

START_TIMEOUT_S = 300.0  # loading torch and the checkpoint on a busy 2-core machine


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).json().get("status") == "UP"
    except (httpx.HTTPError, ValueError):
        return False


def running_backend(folder: Path) -> dict | None:
    """The recorded backend when it is alive and healthy."""
    record_path = folder / "backend.json"
    if not record_path.exists():
        return None
    record = json.loads(record_path.read_text())
    return record if _healthy(record["url"]) else None


def start_backend(folder: Path, environment: dict[str, str], model: Path = Path("models/best.pt")) -> dict:
    """Start the backend connected to labelstudio.project; returns {"pid", "url", "log"} once it is connected."""
    existing = running_backend(folder)
    if existing is not None:
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    port, log_path = free_port(), folder / "backend.log"
    command = [sys.executable, "-m", "pipeline", "ml-backend", "--connect", "--model", str(model), "--port", str(port)]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **environment},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    record = {"pid": process.pid, "url": f"http://127.0.0.1:{port}", "log": str(log_path)}
    deadline = time.monotonic() + START_TIMEOUT_S
    while "ml-backend: connected" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_pid(process.pid)
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])
            raise ServerError(f"the ML backend did not connect; see {log_path}:\n{tail}")
        time.sleep(0.5)  # waiting on another process's log: no event to block on
    (folder / "backend.json").write_text(json.dumps(record))
    return record


def stop_pid(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
