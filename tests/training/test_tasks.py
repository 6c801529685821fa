"""training.tasks: the explicit registry, and the tasks' own contracts."""

from __future__ import annotations

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.training.config import TrainConfig
from usdenoise.training.distributed import World, is_main_process, pick_device
from usdenoise.training.tasks import TASKS
from usdenoise.training.tasks.denoise import DenoiseTask
from usdenoise.training.tasks.segment import SegmentTask


def test_registry_is_explicit() -> None:
    assert TASKS["denoise"] is DenoiseTask and TASKS["segment"] is SegmentTask


def test_segment_task_takes_a_pipeline_instead_of_being_patched() -> None:
    class Given:
        active = False

        def describe(self) -> dict:
            return {"noise": None, "denoise": "given", "denoise_params": {}}

    config = TrainConfig(task="segment", arch="segnet", data="phantom:6", image_size=32,
                         crop=32, loss="dice+ce")
    task = SegmentTask(config, pipeline=Given())
    assert task.checkpoint_meta()["inputs"]["denoise"] == "given"


def test_denoise_task_level_channel_and_native_pairs() -> None:
    config = TrainConfig(data="phantom:4", arch="unet", model={"level_input": True},
                         noise="rayleigh:0.3", native=1.0, native_alpha=0.5)
    task = DenoiseTask(config)
    clean = torch.full((4, 1, 64, 64), 0.5) + 0.03 * torch.randn(4, 1, 64, 64)
    g = torch.Generator().manual_seed(0)
    x, target = task.batch({"image": clean}, g, World(rank=0, size=1, local_rank=0,
                                                      device=torch.device("cpu")))
    assert x.shape == (4, 2, 64, 64) and target.shape == (4, 1, 64, 64)
    # recorrupted: input − clean = a·n and target − clean = −n/a, so their ratio is −a²
    a_n, minus_n_over_a = x[:, :1] - clean, target - clean
    ratio = (a_n * minus_n_over_a).sum() / (minus_n_over_a**2).sum()
    assert float(ratio) == pytest.approx(-0.25, abs=0.02)
    assert task.checkpoint_meta()["level"]["range"][1] > 0


def test_single_process_world_and_devices() -> None:
    assert is_main_process()
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(UsdenoiseError, match="not a device"):
        pick_device("gpu0")
