"""torchrun / DDP helpers: one process per device, ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR`` from the env.

``torchrun --nproc_per_node=N [--nnodes=… --node_rank=… --master_addr=…] -m slnl train …`` sets the variables;
without them everything here degrades to a single process (no process group, the collectives are no-ops).
Backend: NCCL when the device is CUDA (one GPU per process, ``cuda:LOCAL_RANK``), Gloo on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False  # we created the process group (so we destroy it at the end)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment (0, 1, 0 when absent)."""
    def _int(name: str, default: int) -> int:
        v = os.environ.get(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise ValueError(f"environment variable {name}={v!r}: expected an integer (set by torchrun)") from None

    return _int("RANK", 0), _int("WORLD_SIZE", 1), _int("LOCAL_RANK", 0)


def setup(device_type: str) -> DistInfo:
    """Join (or create) the default process group when ``WORLD_SIZE > 1``; NCCL for CUDA, Gloo otherwise."""
    rank, world, local = env_world()
    if world <= 1:
        return DistInfo()
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, False)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but {name} is not set; launch with torchrun "
                               f"(e.g. torchrun --nproc_per_node={world} -m slnl train …)")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local, True)


def teardown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """In-place sum over processes (no-op in a single process). The tensor must be on the backend's device."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank ``src``'s object on every rank (e.g. a checkpoint read by rank 0 only: the run directory need not be on
    a file system that every node sees)."""
    if not info.enabled:
        return obj
    box = [obj if info.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so all ranks evaluate the same model."""
    if not info.enabled:
        return
    for b in module.buffers():
        dist.broadcast(b.data, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
