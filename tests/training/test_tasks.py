"""training.tasks: the explicit registry, and the tasks' own contracts."""

from __future__ import annotations

import pytest
import torch

from usdenoise.checkpoint import save_model
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


def _world() -> World:
    return World(rank=0, size=1, local_rank=0, device=torch.device("cpu"))


def test_denoise_task_zoom_shrinks_batches_within_the_range_and_repeats_per_seed() -> None:
    config = TrainConfig(data="phantom:4", arch="unet", noise="rayleigh:0.3", zoom=0.5,
                         native=0.5)
    clean = torch.rand(4, 1, 96, 96)
    shapes = set()
    for seed in range(8):
        x, target = DenoiseTask(config).batch(
            {"image": clean}, torch.Generator().manual_seed(seed), _world())
        assert x.shape == target.shape
        h, w = x.shape[-2:]
        assert 48 <= h <= 96 and 48 <= w <= 96 and h % 8 == 0 and w % 8 == 0
        shapes.add((h, w))
        again, _ = DenoiseTask(config).batch(
            {"image": clean}, torch.Generator().manual_seed(seed), _world())
        assert torch.equal(x, again)
    assert (96, 96) in shapes and len(shapes) > 2  # half the batches; the factor is drawn
    # a shrunk clean crop is the area mean of the original: the mean grey level is kept
    for seed in range(8):
        small, zoomed = DenoiseTask(config)._zoom(clean, torch.Generator().manual_seed(seed))
        assert float(small.mean()) == pytest.approx(float(clean.mean()), abs=2e-3)
        assert zoomed == (small.shape != clean.shape)


def test_denoise_task_init_copies_weights_and_refuses_another_architecture(tmp_path) -> None:
    config = TrainConfig(data="phantom:4", arch="dncnn", preset="fast")
    source = DenoiseTask(config).build_model()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.5)
    save_model(tmp_path / "src.safetensors", source, arch="dncnn", arch_config=source.config,
               meta={"kind": "denoiser"})
    tuned = DenoiseTask(TrainConfig(data="phantom:4", arch="dncnn", preset="fast",
                                    init=str(tmp_path / "src.safetensors"))).build_model()
    for a, b in zip(source.state_dict().values(), tuned.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(UsdenoiseError, match="init .* set arch, preset and model to match"):
        DenoiseTask(TrainConfig(data="phantom:4", arch="unet", preset="fast",
                                init=str(tmp_path / "src.safetensors"))).build_model()
    with pytest.raises(UsdenoiseError, match="zoom must be in"):
        TrainConfig(data="phantom:4", zoom=2.0)


def test_denoise_task_noise_free_target_is_the_physics_image_without_speckle() -> None:
    from usdenoise.noise import make_noise

    config = TrainConfig(data="phantom:4", arch="unet", noise="physics:0.1",
                         target="noise_free")
    task = DenoiseTask(config)
    clean = torch.zeros(2, 1, 48, 48)
    clean[..., 16:32, 16:32] = 0.8  # a bright square: the PSF blurs its border
    world = World(rank=0, size=1, local_rank=0, device=torch.device("cpu"))
    noisy, target = task.batch({"image": clean}, torch.Generator().manual_seed(0), world)
    expected = make_noise("physics:0.1").noise_free(clean)
    assert torch.allclose(target, expected, atol=1e-6)
    assert not torch.allclose(target, clean, atol=0.05)  # blurred, not the clean square
    assert noisy.shape == clean.shape and not torch.allclose(noisy, target, atol=0.01)
    _, val_target = task.validation_batch({"image": clean, "index": torch.tensor([0, 1])},
                                          torch.device("cpu"))
    assert torch.allclose(val_target, expected, atol=1e-6)


def test_noise_free_target_needs_an_image_formation_model() -> None:
    with pytest.raises(UsdenoiseError, match="target noise_free: noise 'rayleigh:0.3' has no"):
        DenoiseTask(TrainConfig(data="phantom:4", noise="rayleigh:0.3", target="noise_free"))
    with pytest.raises(UsdenoiseError, match="target must be one of clean, noise_free"):
        TrainConfig(data="phantom:4", target="blurred")
    with pytest.raises(UsdenoiseError, match="without native"):
        TrainConfig(data="phantom:4", noise="physics:0.1", target="noise_free", native=0.5)


def _field_batch(level_field: float, native: float = 0.0, seed: int = 0):
    config = TrainConfig(data="phantom:4", arch="unet", model={"level_input": True},
                         noise="gaussian:0.01", level_field=level_field, native=native)
    task = DenoiseTask(config)
    clean = torch.full((4, 1, 96, 96), 0.5)
    if native:  # recorruption needs speckle the image shows
        clean = clean + 0.03 * torch.randn(4, 1, 96, 96, generator=torch.Generator().manual_seed(1))
    x, target = task.batch({"image": clean}, torch.Generator().manual_seed(seed), _world())
    return task, clean, x, target


def test_level_field_scales_the_added_speckle_and_its_map_together() -> None:
    """level_field = 1: every sample's map varies within [0.3, 3] x its level, and where the
    map is high the added speckle is strong (block std against block map, Pearson > 0.9)."""
    task, clean, x, _ = _field_batch(1.0)
    residual, level = x[:, :1] - clean, x[:, 1:] / 10.0  # LEVEL_SCALE
    blocks = torch.nn.functional.avg_pool2d
    for i in range(4):
        ratio = level[i] / level[i].median()
        assert float(level[i].std()) > 0
        assert float(ratio.max() / ratio.min()) <= 10.0 + 1e-4  # 3 / 0.3
        std = blocks(residual[i:i + 1] ** 2, 12).sqrt().flatten()
        mean_map = blocks(level[i:i + 1], 12).flatten()
        assert float(torch.corrcoef(torch.stack([std, mean_map]))[0, 1]) > 0.9
    low, high = task.checkpoint_meta()["level"]["range"]
    assert low == pytest.approx(float(level.min())) and high == pytest.approx(float(level.max()))


def test_level_field_zero_draws_nothing_more() -> None:
    """Without level_field the batch is the one runs made before the key existed."""
    config = TrainConfig(data="phantom:4", arch="unet", model={"level_input": True},
                         noise="gaussian:0.01")
    clean = torch.full((4, 1, 96, 96), 0.5)
    before = DenoiseTask(config).batch({"image": clean}, torch.Generator().manual_seed(3),
                                       _world())
    _, _, x, target = _field_batch(0.0, seed=3)
    assert torch.equal(before[0], x) and torch.equal(before[1], target)
    assert bool((x[:, 1:].flatten(1).std(dim=1) == 0).all())  # constant maps


def test_level_field_leaves_recorrupted_samples_a_constant_map() -> None:
    _, clean, x, target = _field_batch(1.0, native=1.0)
    assert bool((x[:, 1:].flatten(1).std(dim=1) == 0).all())
    a_n, minus_n_over_a = x[:, :1] - clean, target - clean
    ratio = (a_n * minus_n_over_a).sum() / (minus_n_over_a**2).sum()
    assert float(ratio) == pytest.approx(-0.25, abs=0.02)


@pytest.mark.parametrize(("settings", "match"), [
    ({"level_field": 1.5, "model": {"level_input": True}}, "level_field must be in"),
    ({"level_field": 0.5}, "level_field needs a level-conditioned network"),
    ({"level_field": 0.5, "model": {"level_input": True}, "task": "segment", "arch": "segnet",
      "loss": "dice+ce"}, "level_field is a setting of task 'denoise'"),
])
def test_level_field_is_checked(settings: dict, match: str) -> None:
    with pytest.raises(UsdenoiseError, match=match):
        TrainConfig(data="phantom:4", **settings)
