"""usdenoise.core.distributed outside torchrun: a world of one, shares and merges, errors.

The two-process behaviour (gloo) is tested through the commands in tests/cli/test_torchrun.py
and tests/training/test_ddp.py.
"""

from __future__ import annotations

import pytest
import torch.distributed as dist

from usdenoise.core.distributed import (
    World,
    all_gather,
    check_together,
    gather_to_main,
    joined,
    merge_shares,
    share,
    together,
)
from usdenoise.core.errors import UsdenoiseError


@pytest.mark.parametrize("size", [1, 2, 3, 7])
@pytest.mark.parametrize("count", [0, 1, 5, 12])
def test_shares_split_round_robin_and_merge_back(size: int, count: int) -> None:
    items = [f"file{i}" for i in range(count)]
    shares = [share(items, World(rank=r, size=size)) for r in range(size)]
    assert sorted(x for s in shares for x in s) == sorted(items)  # each item exactly once
    for rank, part in enumerate(shares):
        assert part == [items[i] for i in range(count) if i % size == rank]
    assert merge_shares(shares) == items


def test_joined_outside_torchrun_is_a_world_of_one(monkeypatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with joined() as world:
        assert world == World() and world.is_main and not world.distributed
        assert not (dist.is_available() and dist.is_initialized())  # no group was started
        assert all_gather({"a": 1}, world) == [{"a": 1}]
        assert gather_to_main(3, world) == [3]


def test_check_together_in_a_world_of_one_raises_the_error_itself() -> None:
    world = World()
    check_together(None, world)
    error = UsdenoiseError("x.png: broken")
    with pytest.raises(UsdenoiseError) as raised:
        check_together(error, world)
    assert raised.value is error
    with pytest.raises(RuntimeError, match="boom"), together(world):
        raise RuntimeError("boom")
    with together(world):
        pass
