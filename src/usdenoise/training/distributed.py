"""The little that DDP needs: read torchrun's environment, pick the device, reduce numbers.

Started with `torchrun --nproc_per_node N -m usdenoise train ...` (or several nodes with
`--nnodes/--node_rank/--master_addr`), each process sees RANK, LOCAL_RANK and WORLD_SIZE and
joins the group through `env://`: NCCL on CUDA, gloo on CPU. Started plainly, it is a world
of one and nothing here touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from usdenoise.core.devices import resolve_auto
from usdenoise.core.errors import UsdenoiseError


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Only this process writes files and prints."""
        return self.rank == 0


def pick_device(name: str, *, local_rank: int = 0) -> torch.device:
    """`auto` -> the local GPU if there is one, else CPU; `cuda` -> this process's GPU."""
    name = resolve_auto(name)
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsdenoiseError(
            f"--device {name!r}: not a device (use auto, cpu, cuda, cuda:N)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsdenoiseError(f"--device {name}: CUDA is not available on this machine")
        index = local_rank if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise UsdenoiseError(
                f"--device {name}: GPU {index} does not exist "
                f"({torch.cuda.device_count()} visible)"
            )
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    return device


def start(device_name: str) -> World:
    """Join the torchrun process group if launched by torchrun; otherwise a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank=local_rank)
    if size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    return World(rank=rank, local_rank=local_rank, size=size, device=device)


def stop(world: World, *, clean: bool = True) -> None:
    """Leave the group; after success, wait for every process first so none sees a closed peer."""
    if world.distributed and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def sum_over_processes(values: list[float], world: World) -> list[float]:
    """Element-wise sum of a few numbers over all processes (float64 for exact-ish sums)."""
    if not world.distributed:
        return list(values)
    backend_device = world.device if world.device.type == "cuda" else torch.device("cpu")
    tensor = torch.tensor(values, dtype=torch.float64, device=backend_device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_flag(flag: bool, world: World) -> bool:
    """Rank 0's decision (e.g. early stop), so every process leaves the loop together."""
    if not world.distributed:
        return flag
    backend_device = world.device if world.device.type == "cuda" else torch.device("cpu")
    tensor = torch.tensor([1 if flag else 0], device=backend_device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def is_main_process() -> bool:
    """True outside torchrun and on its rank 0 (for printing after `fit` returns)."""
    return int(os.environ.get("RANK", "0")) == 0
