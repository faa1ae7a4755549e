"""Process-group helpers: the same code runs alone, under `torchrun`, on CPU (gloo) and on GPUs (NCCL).

`torchrun --nproc_per_node=N -m nafft train ...` sets RANK, WORLD_SIZE and LOCAL_RANK; `setup()` reads them and
initialises the default process group when WORLD_SIZE > 1. Without torchrun (or with one process) nothing is
initialised and every helper is a no-op, so single-GPU and CPU runs never touch torch.distributed.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# Rank 0 writes checkpoints while the others wait; give slow disks and big models room before a collective
# times out (the defaults are 10-30 minutes).
TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Initialise the process group from torchrun's environment (if any) and pick this process's device.

    Args:
        device: "auto" (the local GPU when CUDA is available, else CPU), "cpu", "cuda" or "cuda:N". Under torchrun
            "cuda" means the GPU of LOCAL_RANK.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        from nafft.errors import ConfigError

        raise ConfigError(f"train.device is '{device}' but CUDA is not available here")
    if use_cuda:
        if world_size > 1 or device in ("auto", "cuda"):
            dev = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        else:
            dev = torch.device(device)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    initialized_here = False
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        try:  # device_id (torch >= 2.3) binds NCCL to this GPU up front
            kwargs = {"device_id": dev} if dev.type == "cuda" else {}
            dist.init_process_group(backend=backend, timeout=TIMEOUT, **kwargs)
        except TypeError:
            dist.init_process_group(backend=backend, timeout=TIMEOUT)
        initialized_here = True
        log.info("process group: %s, rank %d of %d, device %s", backend, rank, world_size, dev)
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank, world_size, local_rank, initialized_here), dev


def teardown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over processes, in place; returns the tensor."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def broadcast_object(obj, info: DistInfo, src: int = 0):
    """`obj` from rank `src` on every rank (a picklable value of our own making, never a loaded file)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj, info: DistInfo) -> list:
    """`obj` of every rank, in rank order, on every rank (small picklable values of our own making)."""
    if not info.enabled:
        return [obj]
    gathered = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
