"""The served checkpoint: loaded once, reloaded when the file on disk is replaced.

Training writes `best.pt` by an atomic rename, so a changed (inode, size, mtime) means a new
file; the next request loads it and its `model_version` (name + hash) changes with it. A
checkpoint that cannot be loaded keeps the previous model in service and is reported.

Listeners (e.g. the connection that renames the backend in Label Studio) hear of a new version
from `announce()`, which a watcher thread and the end of a training run call, never from inside
a request Label Studio is waiting on: Label Studio saves its backend record after /setup
returns, and a rename sent meanwhile would be overwritten.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.model.predictor import FileStamp, Predictor, load_predictor


class ServedModel:
    """Thread-safe holder of the current Predictor for one checkpoint path."""

    def __init__(self, checkpoint: Path, classes: list[str], model_name: str | None, device: str, threads: int):
        self.checkpoint = Path(checkpoint)
        self._options = (list(classes), model_name, device, threads)
        self._lock = threading.Lock()
        self._current: Predictor | None = None
        self.last_error: str | None = None
        self._failed: FileStamp | None = None  # a broken file is tried once, not on every request
        self.loads = 0
        self.listeners: list[Callable[[str], None]] = []  # called with each new model_version by announce()
        self._announced: str | None = None
        self._announce_lock = threading.Lock()

    def announce(self) -> str:
        """Load the file if it changed and tell the listeners when the version differs from the last told."""
        with self._announce_lock:
            version = self.current().version
            if self._announced is not None and version != self._announced:
                for listener in self.listeners:
                    listener(version)
            self._announced = version
            return version

    def watch(self, stop: threading.Event, interval_s: float = 2.0) -> None:
        """Announce new checkpoints until `stop` is set (run in a daemon thread)."""
        while not stop.wait(interval_s):
            try:
                self.announce()
            except PipelineError as error:
                self.last_error = str(error)

    def current(self) -> Predictor:
        """The predictor for the checkpoint as it is on disk now (loading it when it changed)."""
        with self._lock:
            try:
                stamp = FileStamp.of(self.checkpoint)
            except FileNotFoundError:
                stamp = None
            if self._current is not None and (stamp is None or stamp in (self._current.stamp, self._failed)):
                return self._current  # unchanged, gone for a moment or known broken: keep serving what we have
            try:
                self._current = load_predictor(self.checkpoint, *self._options)
                self.loads += 1
                self.last_error = None
            except PipelineError as error:
                self.last_error, self._failed = str(error), stamp
                if self._current is None:
                    raise
            return self._current

    def describe(self) -> dict:
        """Model facts for /status, without loading anything."""
        current = self._current
        return {
            "checkpoint": str(self.checkpoint),
            "model_version": current.version if current else None,
            "device": str(current.device) if current else None,
            "loads": self.loads,
            "error": self.last_error,
        }
