"""One map over tasks for the per-task stages: bytes in, bytes out, in input order, on either backend.

  local  processes of this machine (standard library; the default)
  dask   a Dask distributed cluster: `DASK_SCHEDULER_ADDRESS` in the environment, or a stage's
         `--scheduler` option (an address like tcp://10.0.0.5:8786)

A kernel is a picklable callable taking one payload (bytes) and returning one result (bytes):
workers read and write no file, so a cluster needs no shared filesystem, and the driver alone
writes outputs, in task order. At most `batches_per_worker` batches per worker are in flight,
so memory stays flat on any input size. The scheduler address is deployment, not data: it never
enters params.yaml or dvc.lock, and since kernels are pure, outputs are byte-identical on every
backend and worker count.

`pack` / `unpack` frame several named byte strings into one payload or result.
"""

from __future__ import annotations

import json
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.core.errors import PipelineError
from pipeline.core.parallel import chunks, ordered_map

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
Kernel = Callable[[bytes], bytes]
_HEADER = struct.Struct("<I")


def pack(parts: dict[str, bytes]) -> bytes:
    """Named byte strings as one: a 4-byte header length, a JSON header [[name, length], ...], the bytes."""
    header = json.dumps([[name, len(value)] for name, value in parts.items()]).encode()
    return b"".join([_HEADER.pack(len(header)), header, *parts.values()])


def unpack(blob: bytes) -> dict[str, bytes]:
    """The parts `pack` framed, in their order."""
    try:
        (length,) = _HEADER.unpack_from(blob)
        layout = json.loads(blob[_HEADER.size : _HEADER.size + length])
        offset, parts = _HEADER.size + length, {}
        for name, size in layout:
            parts[name] = blob[offset : offset + size]
            offset += size
    except (struct.error, ValueError, TypeError) as error:
        raise PipelineError(f"a worker's message is not framed by pipeline.core.taskmap.pack ({error})") from None
    if offset != len(blob):
        raise PipelineError(f"a worker's message holds {len(blob)} bytes, its header announces {offset}")
    return parts


@dataclass
class Traffic:
    """Bytes sent to and received from workers, and tasks mapped (for figures; cheap to keep)."""

    tasks: int = 0
    sent: int = 0
    received: int = 0

    def per_task(self) -> float:
        return (self.sent + self.received) / self.tasks if self.tasks else 0.0


@dataclass
class LocalBackend:
    """Processes of this machine; with one worker everything runs in this process."""

    workers: int
    batch: int = 16
    batches_per_worker: int = 4
    traffic: Traffic = field(default_factory=Traffic)

    def describe(self) -> str:
        return f"local processes ({self.workers})"

    def map(self, kernel: Kernel, payloads: Iterable[bytes]) -> Iterator[bytes]:
        """kernel(payload) for every payload, in input order."""
        for payload, result in ordered_map(kernel, payloads, self.workers, self.batch, self.batches_per_worker):
            self.traffic.tasks += 1
            self.traffic.sent += len(payload)
            self.traffic.received += len(result)
            yield result

    def close(self) -> None:
        pass


def _apply_batch(kernel: Kernel, batch: list[bytes]) -> list[bytes]:
    return [kernel(payload) for payload in batch]


@dataclass
class DaskBackend:
    """A Dask distributed scheduler at `address`; its workers need this package, same version."""

    address: str
    batch: int = 16
    batches_per_worker: int = 4
    traffic: Traffic = field(default_factory=Traffic)
    _client: object = None

    def describe(self) -> str:
        return f"Dask scheduler {self.address}"

    def _connect(self):
        if self._client is None:
            try:
                import dask
                from distributed import Client
            except ImportError:
                raise PipelineError(
                    f"a Dask scheduler was asked for but `distributed` is not installed; install the "
                    f"project's pinned dependencies (pip install -e .) or unset {SCHEDULER_ENV}"
                ) from None
            # distributed keeps the last `low-level-log-length` messages of each batched comm for
            # debugging (1,000 by default, each under 1 MB): on the client's comm to the scheduler they
            # are the submitted batches, payloads included, so the driver grew with the task count until
            # 1,000 batches were held. Off for this process, so a comm reopened on reconnection keeps none.
            dask.config.set({"distributed.admin.low-level-log-length": 0})
            try:
                self._client = Client(self.address, set_as_default=False, timeout=30)
            except OSError as error:
                raise PipelineError(
                    f"cannot reach the Dask scheduler at {self.address} ({error}); start it with "
                    f"`dask scheduler`, or unset {SCHEDULER_ENV} to run on local processes"
                ) from None
        return self._client

    def map(self, kernel: Kernel, payloads: Iterable[bytes]) -> Iterator[bytes]:
        """kernel(payload) for every payload, in input order, on the cluster's workers."""
        client = self._connect()
        threads = sum(client.nthreads().values())
        if threads == 0:
            raise PipelineError(
                f"the Dask scheduler at {self.address} has no workers; start some with `dask worker {self.address}`"
            )
        # The kernel (with its project-wide models) travels to each worker once, not with every batch.
        shared_kernel = client.scatter(kernel, broadcast=True, hash=False)
        in_flight: deque = deque()
        for batch in chunks(payloads, self.batch):
            self.traffic.sent += sum(map(len, batch))
            in_flight.append(client.submit(_apply_batch, shared_kernel, batch, pure=False))
            if len(in_flight) >= self.batches_per_worker * threads:
                yield from self._collect(in_flight.popleft())
        while in_flight:
            yield from self._collect(in_flight.popleft())

    def _collect(self, future) -> Iterator[bytes]:
        results = future.result()  # re-raises a worker's exception here, with its traceback
        self.traffic.tasks += len(results)
        self.traffic.received += sum(map(len, results))
        yield from results

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


Backend = LocalBackend | DaskBackend


def choose_backend(scheduler: str | None, workers: int) -> Backend:
    """Dask when a scheduler address is given (option first, then the environment), else local processes.

    `workers` (0 = all cores) only sizes the local pool: a cluster's size is its workers'.
    """
    address = (scheduler or os.environ.get(SCHEDULER_ENV, "")).strip()
    if address:
        return DaskBackend(address)
    return LocalBackend(workers or os.cpu_count() or 1)
