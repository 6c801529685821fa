"""The varying level map: more speckle removal in flat tissue, less at structures."""

from __future__ import annotations

import pytest
import torch

from usdenoise.noise.adaptive_level import adaptive_level_map, flatness
from usdenoise.noise.level import LEVEL_SCALE, correlated_noise, level_map


def speckled(height: int = 64, width: int = 96, *, step: bool = False, seed: int = 0
             ) -> torch.Tensor:
    """Tissue at 0.4 with correlated grain of std 0.05; with `step`, the right half at 0.8."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((1, 1, height, width), 0.4)
    if step:
        x[..., width // 2:] = 0.8
    return x + 0.05 * correlated_noise((1, 1, height, width), axial=1.5, lateral=2.5,
                                       generator=g)


def test_flatness_is_high_in_tissue_and_low_at_an_edge() -> None:
    w = flatness(speckled(step=True))[0, 0]
    assert w.shape == (64, 96) and float(w.min()) >= 0.0 and float(w.max()) <= 1.0
    assert float(w[:, 46:50].mean()) < 0.15  # the step at column 48 (after the final blur)
    assert float(w[:, :30].mean()) > 0.8 and float(w[:, 66:].mean()) > 0.8


def test_flatness_of_uniform_speckle_is_near_one() -> None:
    assert float(flatness(speckled()).mean()) > 0.8


def test_flatness_normalises_each_image_by_itself() -> None:
    a, b = speckled(step=True), 3.0 * speckled(seed=1)
    both = flatness(torch.cat([a, b]))
    assert torch.allclose(both[:1], flatness(a), atol=1e-6)
    assert torch.allclose(both[1:], flatness(b), atol=1e-6)


def test_a_dark_image_is_normalised_by_its_median_over_every_pixel() -> None:
    """An image wholly below CONTENT_FLOOR (no imaged content) falls back to the median over
    all its pixels, also beside a bright image in the same batch: the same flatness as that
    image scaled into the content range, where its pixels count."""
    dark = speckled(step=True) * 0.02  # 0.008-0.017: below the floor everywhere
    both = flatness(torch.cat([dark, speckled(seed=1)]))
    assert bool(torch.isfinite(both).all())
    torch.testing.assert_close(both[:1], flatness(dark * 50.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(both[1:], flatness(speckled(seed=1)), atol=1e-5, rtol=0)
    assert float(both[0, 0, :, 46:50].mean()) < 0.15  # the step is still the structure


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (1, 1, 1, 9), (2, 1, 7, 3)])
def test_flatness_of_tiny_images(shape: tuple[int, ...]) -> None:
    w = flatness(torch.rand(shape))
    assert w.shape == shape and bool(torch.isfinite(w).all())


def test_smooth_zero_is_the_constant_map() -> None:
    x, level = speckled(step=True), torch.tensor([0.07])
    assert torch.equal(adaptive_level_map(level, x, 0.0), level_map(level, x))


def test_the_map_spans_level_over_and_times_one_plus_smooth() -> None:
    x, level, s = speckled(step=True), torch.tensor([0.06]), 3.0
    m = adaptive_level_map(level, x, s)[0, 0] / LEVEL_SCALE
    low, high = 0.06 / (1 + s), 0.06 * (1 + s)
    assert float(m.min()) >= low - 1e-7 and float(m.max()) <= high + 1e-7
    flat = float(m[:, :20].median())
    assert flat == pytest.approx(high, rel=0.1)
    assert float(m[:, 47:49].mean()) < 0.25 * flat  # at the edge


def test_the_map_is_clamped_to_the_trained_range() -> None:
    m = adaptive_level_map(torch.tensor([0.06]), speckled(step=True), 3.0, low=0.03, high=0.1)
    assert float(m.min()) == pytest.approx(0.3) and float(m.max()) == pytest.approx(1.0)


def test_negative_smooth_is_refused() -> None:
    with pytest.raises(ValueError, match="smooth must be >= 0"):
        adaptive_level_map(torch.tensor([0.1]), speckled(), -1.0)
