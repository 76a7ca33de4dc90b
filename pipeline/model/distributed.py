"""One process or many: the same training code under `python` and under `torchrun`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/PORT); when they are present the
process group is started (nccl on CUDA, gloo on CPU), each process takes GPU LOCAL_RANK, and
only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from pipeline.core.errors import TrainingError


@dataclasses.dataclass(frozen=True)
class Runtime:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:LOCAL_RANK when a GPU is there, else cpu; 'cuda' -> cuda:LOCAL_RANK; else as given."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} asked but no CUDA GPU is visible; use device: auto or cpu")
    if name == "cuda":
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    try:
        return torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


def set_cpu_threads(threads: int, device: torch.device) -> None:
    """Intra-op threads for CPU work (0 keeps PyTorch's default); spinning threads that wait for a busy
    core can make a step many times slower than one thread."""
    if threads < 0:
        raise TrainingError(f"threads must be >= 0 (0 = PyTorch's default), got {threads}")
    if threads and device.type == "cpu":
        torch.set_num_threads(threads)


def setup(device_name: str, threads: int = 0) -> Runtime:
    """Read torchrun's environment, pick the device, start the process group when there are several."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    set_cpu_threads(threads, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            rank=rank,
            world_size=world_size,
            device_id=device if device.type == "cuda" else None,
        )
    return Runtime(rank, world_size, local_rank, device)


def teardown(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()


@contextlib.contextmanager
def main_first(runtime: Runtime) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. a download into a shared cache), the others after it."""
    if not runtime.is_main:
        barrier(runtime)
    yield
    if runtime.is_main:
        barrier(runtime)


def all_reduce_sum(tensor: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Sum over processes (a copy on the process group's device; returned on the input's device)."""
    if not runtime.distributed:
        return tensor
    work = tensor.to(runtime.device if runtime.device.type == "cuda" else "cpu").clone()
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(tensor.device)
