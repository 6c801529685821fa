"""Native-speckle estimator: recovers physics PSF widths and level; degrades gracefully."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.noise.estimate import (
    SpeckleEstimate,
    aggregate,
    estimate_dataset,
    estimate_speckle,
    measure_patches,
)
from usdenoise.noise.speckle import Physics

torch.set_num_threads(1)


def smooth_scene(size: int = 256) -> torch.Tensor:
    """A slowly varying echogenicity map (a depth ramp and a lateral bump), [1,1,H,W]."""
    y = torch.linspace(0.0, 1.0, size)[:, None]
    x = torch.linspace(-1.0, 1.0, size)[None, :]
    return (0.42 + 0.12 * y + 0.06 * torch.exp(-4 * x**2)).expand(size, size)[None, None]


def speckled(axial: float, lateral: float, sigma: float, seed: int) -> torch.Tensor:
    model = Physics(sigma, axial_sigma=axial, lateral_sigma=lateral)
    return model(smooth_scene(), generator=torch.Generator().manual_seed(seed))[0]


@pytest.mark.parametrize("axial,lateral", [(1.0, 1.5), (1.5, 2.5), (2.5, 4.0)])
@pytest.mark.parametrize("sigma", [0.05, 0.1])
def test_physics_parameters_within_15_percent(axial, lateral, sigma) -> None:
    e = estimate_speckle(speckled(axial, lateral, sigma, seed=int(100 * axial + 1000 * sigma)))
    assert e.found and e.patches >= 20
    assert e.axial_sigma == pytest.approx(axial, rel=0.15)
    assert e.lateral_sigma == pytest.approx(lateral, rel=0.15)
    assert e.sigma == pytest.approx(sigma, rel=0.15)
    assert e.level == e.sigma and e.frequency == 0.25
    # grain grows with the PSF, laterally wider than axially here
    assert e.lateral_fwhm > e.axial_fwhm > 1.0
    model = e.physics_model()
    assert isinstance(model, Physics) and model.system.axial_sigma == e.axial_sigma


def test_white_noise_has_a_narrow_grain_and_a_flat_psd() -> None:
    rng = np.random.default_rng(0)
    y = torch.from_numpy(np.clip(0.5 + 0.05 * rng.standard_normal((128, 128)), 0, 1))
    e = estimate_speckle(y)
    assert e.level == pytest.approx(0.05, rel=0.1)
    assert e.axial_fwhm < 1.6 and e.lateral_fwhm < 1.6
    assert float(e.psd.std() / e.psd.mean()) < 0.5


def test_noise_psd_follows_the_bm3d_convention() -> None:
    e = estimate_speckle(speckled(1.5, 2.5, 0.1, seed=1))
    psd = e.noise_psd((200, 150))
    assert psd.shape == (200, 150) and (psd >= 0).all()
    # mean of the PSD = H * W * level^2 (a white sigma is ones * H * W * sigma^2)
    assert psd.mean() == pytest.approx(200 * 150 * e.level**2, rel=1e-6)
    # correlated: the low frequencies carry more power than the highest
    assert psd[:3, :3].mean() > 20 * psd[95:105, 70:80].mean()
    assert e.noise_psd().shape == e.shape


def test_measure_patches_on_another_domain_scales_the_level() -> None:
    y = speckled(1.5, 2.5, 0.1, seed=2)
    e = estimate_speckle(y)
    twice = measure_patches(2 * y, e.positions, patch=e.patch)
    assert twice.level == pytest.approx(2 * e.level, rel=1e-6)
    assert twice.axial_fwhm == pytest.approx(e.axial_fwhm, rel=1e-6)
    with pytest.raises(UsdenoiseError, match="leaves"):
        measure_patches(y, [(250, 0)], patch=32)
    assert measure_patches(y, [], patch=32).patches == 0


def check_empty(e: SpeckleEstimate) -> None:
    assert e.patches == 0 and not e.found and e.positions == ()
    for name in ("axial_fwhm", "lateral_fwhm", "level", "axial_sigma", "lateral_sigma", "sigma",
                 "frequency", "psd"):
        assert getattr(e, name) is None, name
    assert e.reason and e.noise_psd() is None and e.physics_model() is None
    assert e.to_dict()["physics"] is None


def test_checkerboard_has_no_homogeneous_patch() -> None:
    i = torch.arange(256)
    board = (((i[:, None] // 32) + (i[None, :] // 32)) % 2).double() * 0.6 + 0.2
    e = estimate_speckle(board)
    check_empty(e)
    assert "homogeneous" in e.reason


def test_strong_gradient_and_constant_images_have_nothing_to_measure() -> None:
    ramp = torch.linspace(0.05, 0.95, 256)[None, :].expand(256, 256)
    for image in (ramp, torch.full((1, 128, 128), 0.4)):
        e = estimate_speckle(image)
        check_empty(e)
        assert "texture" in e.reason


def test_black_image_and_tiny_image() -> None:
    check_empty(estimate_speckle(torch.zeros(64, 64)))
    e = estimate_speckle(torch.rand(16, 16))
    check_empty(e)
    assert "smaller" in e.reason


def test_black_sector_background_is_ignored() -> None:
    y = speckled(1.5, 2.5, 0.1, seed=3)
    y[:, :, :100] = 0.0  # outside the scan sector
    e = estimate_speckle(y)
    assert all(c >= 100 - 1 for _, c in e.positions)
    assert e.sigma == pytest.approx(0.1, rel=0.15)


@pytest.mark.parametrize(
    "image",
    [torch.rand(2, 32, 32), torch.rand(1, 1, 32, 32), torch.rand(32), "image",
     torch.full((32, 32), 2.0), torch.full((32, 32), float("nan")),
     torch.zeros(32, 32, dtype=torch.int64)],
)
def test_bad_input_raises(image) -> None:
    with pytest.raises(UsdenoiseError, match="estimate_speckle"):
        estimate_speckle(image)


@pytest.mark.parametrize("options", [{"patch": 4}, {"stride": 0}, {"keep": 0},
                                     {"max_structure": 0}])
def test_bad_options_raise(options) -> None:
    with pytest.raises(UsdenoiseError, match="estimate_speckle"):
        estimate_speckle(torch.rand(64, 64), **options)


def test_dataset_aggregate_is_the_median_and_skips_empty_images() -> None:
    images = [speckled(1.5, 2.5, s, seed=10 + k) for k, s in enumerate((0.05, 0.08, 0.1))]
    images.append(torch.full((1, 256, 256), 0.5))  # nothing to measure
    dataset = [{"image": im, "id": f"im{k}"} for k, im in enumerate(images)]
    agg = estimate_dataset(dataset)
    assert agg.images == 4 and agg.measured == 3
    assert agg.sigma == pytest.approx(0.08, rel=0.15)
    assert agg.level == sorted(e.level for e in agg.estimates[:3])[1]
    record = agg.to_dict()
    assert [r["id"] for r in record["per_image"]] == ["im0", "im1", "im2", "im3"]
    assert estimate_dataset(dataset, limit=1).images == 1
    assert aggregate([]).measured == 0 and aggregate([]).sigma is None
    with pytest.raises(UsdenoiseError, match="limit"):
        estimate_dataset(dataset, limit=0)


def test_phantom_dataset_runs() -> None:
    from usdenoise.data import load_dataset

    agg = estimate_dataset(load_dataset("phantom:2", size=128))
    assert agg.images == 2


@pytest.mark.hc18
def test_hc18_scan_has_native_speckle(hc18_root) -> None:
    from usdenoise.io import read_image

    e = estimate_speckle(read_image(hc18_root / "training_set" / "000_HC.png"))
    assert e.patches >= 4 and 0.01 < e.level < 0.2
    assert e.lateral_fwhm > e.axial_fwhm > 1.5  # native grain: several px, wider laterally
