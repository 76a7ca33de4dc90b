"""One training run at a time in the background, with its state, progress and log file.

Label Studio's "Start training" button sends a START_TRAINING webhook; the run is a command
(default `dvc repro train`) started as a child process in its own process group, its output
appended to a log file. A second request while a run is going is answered with that run's
state and starts nothing.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import PipelineError

DEFAULT_COMMAND = "dvc repro train"
IDLE, RUNNING, SUCCEEDED, FAILED = "idle", "running", "succeeded", "failed"


@dataclass
class RunState:
    """What /status reports about the latest run."""

    state: str = IDLE
    command: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    returncode: int | None = None
    runs: int = 0


def _tail(path: Path, limit: int) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        return handle.read().decode(errors="replace")


def last_line(path: Path, limit: int = 4096) -> str:
    """The last non-empty line of a log (tqdm's carriage returns split lines too)."""
    lines = [line.strip() for line in _tail(path, limit).replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def last_stage(path: Path, limit: int = 1 << 16) -> str | None:
    """The DVC stage the end of the log says is running ("Running stage 'train':")."""
    stages = [
        line.split("'")[1]
        for line in _tail(path, limit).splitlines()
        if line.startswith("Running stage '") and line.count("'") >= 2
    ]
    return stages[-1] if stages else None


class TrainingJob:
    """Starts the training command at most once at a time and watches it from a thread."""

    def __init__(self, command: str, log_path: Path, workdir: Path, on_finish: Callable[[int], None] | None = None):
        if not shlex.split(command):
            raise PipelineError("the training command is empty; pass --train-command, e.g. 'dvc repro train'")
        self.command, self.log_path, self.workdir = command, Path(log_path), Path(workdir)
        self._lock = threading.Lock()
        self._state = RunState()
        self._process: subprocess.Popen | None = None
        self._watcher: threading.Thread | None = None
        self.on_finish = on_finish  # called with the exit code before the run is marked finished

    def start(self) -> tuple[bool, dict]:
        """(True, status) when a run was started now; (False, status) when one is already running."""
        with self._lock:
            if self._state.state == RUNNING:
                return False, self._status_locked()
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {self.command}\n".encode())
                log.flush()
                self._process = subprocess.Popen(
                    shlex.split(self.command),
                    cwd=self.workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self._state = RunState(RUNNING, self.command, time.time(), None, None, self._state.runs + 1)
            self._watcher = threading.Thread(target=self._watch, args=(self._process,), daemon=True)
            self._watcher.start()
            return True, self._status_locked()

    def _watch(self, process: subprocess.Popen) -> None:
        code = process.wait()
        if self.on_finish is not None:
            try:
                self.on_finish(code)
            except Exception as error:  # a failing callback must not leave the run "running" forever
                with open(self.log_path, "a") as log:
                    log.write(f"after the run: {type(error).__name__}: {error}\n")
        with self._lock:
            self._state.returncode = code
            self._state.finished_at = time.time()
            self._state.state = SUCCEEDED if code == 0 else FAILED

    def wait(self, timeout_s: float | None = None) -> dict:
        """Block until the current run and its `on_finish` are over (tests, shutdown); returns the status."""
        watcher = self._watcher
        if watcher is not None:
            watcher.join(timeout_s)
        return self.status()

    def stop(self) -> None:
        """End a running command and its children (its own process group)."""
        process = self._process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)

    def status(self) -> dict:
        with self._lock:
            return self._status_locked()

    def _status_locked(self) -> dict:
        state = self._state
        end = state.finished_at or time.time()
        return {
            "state": state.state,
            "command": state.command or self.command,
            "runs": state.runs,
            "started_at": state.started_at,
            "finished_at": state.finished_at,
            "returncode": state.returncode,
            "elapsed_s": round(end - state.started_at, 1) if state.started_at else None,
            "stage": last_stage(self.log_path) if state.started_at else None,
            "last_log_line": last_line(self.log_path) if state.started_at else "",
            "log": str(self.log_path),
        }
