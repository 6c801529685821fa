"""torchrun's process group: who this process is, joining and leaving, and a few collectives.

Started with `torchrun --nproc_per_node N -m usdenoise train|evaluate|denoise ...` (or several
nodes with `--nnodes/--node_rank/--master_addr`), each process sees RANK, LOCAL_RANK and
WORLD_SIZE and joins the group through `env://`. Started plainly, it is a world of one and
nothing here touches torch.distributed.

Training exchanges gradients: NCCL on CUDA, gloo on CPU (`start`). `evaluate` and `denoise`
exchange only small Python objects (their share's records, errors) and always use gloo
(`joined`); each of their processes still runs its own GPU (LOCAL_RANK) where there is one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from usdenoise.core.devices import resolve_auto
from usdenoise.core.errors import UsdenoiseError

T = TypeVar("T")


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


def _environment() -> tuple[int, int, int]:
    """(WORLD_SIZE, RANK, LOCAL_RANK) as torchrun sets them; (1, 0, 0) outside it."""
    return (int(os.environ.get("WORLD_SIZE", "1") or 1), int(os.environ.get("RANK", "0") or 0),
            int(os.environ.get("LOCAL_RANK", "0") or 0))


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
    size, rank, local_rank = _environment()
    device = pick_device(device_name, local_rank=local_rank)
    if size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    return World(rank=rank, local_rank=local_rank, size=size, device=device)


def stop(world: World, *, clean: bool = True) -> None:
    """Leave the group; after success, wait for every process first so none sees a closed peer."""
    if world.distributed and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def joined(*, timeout_s: float = 24 * 3600.0) -> Iterator[World]:
    """The gloo group for commands that share out files (`evaluate`, `denoise`), left again
    at the end; a world of one outside torchrun. Under torchrun each process's `cuda` is
    made its own GPU (LOCAL_RANK). The long timeout: a process that finished its share
    waits at the merge for the slowest one, which may take hours on a large folder."""
    size, rank, local_rank = _environment()
    if size <= 1:
        yield World()
        return
    if torch.cuda.is_available() and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend="gloo", init_method="env://",
                                timeout=timedelta(seconds=timeout_s))
    world = World(rank=rank, local_rank=local_rank, size=size)
    finished = False
    try:
        yield world
        finished = True
    finally:
        if started:
            stop(world, clean=finished)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def share(items: Sequence[T], world: World) -> list[T]:
    """This process's share: item i goes to process i % size (the same split every run)."""
    return list(items[world.rank::world.size])


def merge_shares(shares: Sequence[Sequence[T]]) -> list[T]:
    """Undo `share`: the per-process lists (in rank order) back in the original order."""
    out: list[T] = []
    for i in range(max((len(s) for s in shares), default=0)):
        out += [s[i] for s in shares if i < len(s)]
    return out


def all_gather(value: Any, world: World) -> list[Any]:
    """Every process's `value` (picklable), in rank order, on every process."""
    if not world.distributed:
        return [value]
    found: list[Any] = [None] * world.size
    dist.all_gather_object(found, value)
    return found


def gather_to_main(value: Any, world: World) -> list[Any] | None:
    """Every process's `value` (picklable), in rank order, on rank 0; None on the others."""
    if not world.distributed:
        return [value]
    found: list[Any] | None = [None] * world.size if world.is_main else None
    dist.gather_object(value, found, dst=0)
    return found


def check_together(error: BaseException | None, world: World) -> None:
    """Every process stops when any one met an error, so none waits at a later collective:
    the one that met it raises its own; the others raise the first one's message (rank
    order) as a UsdenoiseError. Every process must call this at the same point."""
    if not world.distributed:
        if error is not None:
            raise error
        return
    report = None if error is None else (isinstance(error, UsdenoiseError),
                                         f"{type(error).__name__}: {error}", str(error))
    reports = all_gather(report, world)
    if error is not None:
        raise error
    for rank, item in enumerate(reports):
        if item is not None:
            plain, named, message = item
            raise UsdenoiseError(message if plain else f"process {rank} failed: {named}")


@contextmanager
def together(world: World) -> Iterator[None]:
    """`check_together` around a block: an error in it, on any process, stops all of them."""
    try:
        yield
    except Exception as exc:
        check_together(exc, world)
        raise
    check_together(None, world)


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
    """True outside torchrun and on its rank 0 (for printing after the work returns)."""
    return _environment()[1] == 0
