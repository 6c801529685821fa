from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_wavelet

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.wavelet import WaveletBayesShrink


def speckled(size: int = 64, level: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.full((size, size), level)
    y = np.clip(x + x * rng.normal(0, np.sqrt(0.05), x.shape), 0, 1)
    return y.astype(np.float32).astype(np.float64)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).float()[None, None]


@pytest.mark.parametrize(
    "params", [{}, {"wavelet": "sym4", "mode": "hard", "levels": 2, "sigma": 0.05}]
)
def test_matches_scikit_image(params) -> None:
    y = speckled(64, 0.3, seed=1)
    y[16:48, 8:40] = np.clip(y[16:48, 8:40] * 2.5, 0, 1)
    ref = denoise_wavelet(
        y,
        sigma=params.get("sigma"),
        wavelet=params.get("wavelet", "db1"),
        mode=params.get("mode", "soft"),
        wavelet_levels=params.get("levels"),
        method="BayesShrink",
        rescale_sigma=True,
    )
    out = WaveletBayesShrink(**params).denoise(as_tensor(y))[0, 0].numpy()
    np.testing.assert_allclose(out, np.clip(ref, 0, 1), atol=1e-6)  # float32 output


def test_constant_stays_constant() -> None:
    x = torch.full((1, 1, 32, 32), 0.7)
    torch.testing.assert_close(WaveletBayesShrink().denoise(x), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(WaveletBayesShrink(sigma=0.1).denoise(x), x, atol=1e-5, rtol=0)


def test_flat_speckle_variance_drops() -> None:
    y = speckled(64, seed=2)
    out = WaveletBayesShrink().denoise(as_tensor(y))
    assert float(out.var()) < 0.5 * y.var()


def test_shape_range_and_batch() -> None:
    x = torch.from_numpy(np.stack([speckled(32, 0.8, 3), speckled(32, 0.2, 4)])).float()[:, None]
    out = WaveletBayesShrink().denoise(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    torch.testing.assert_close(out[1:], WaveletBayesShrink().denoise(x[1:]), atol=0, rtol=0)


@pytest.mark.parametrize(
    "params",
    [
        {"wavelet": "db99"},
        {"mode": "garrote"},
        {"levels": 0},
        {"levels": 11},
        {"sigma": -0.1},
        {"sigma": 1.5},
        {"method": "VisuShrink"},
    ],
)
def test_bad_parameters(params) -> None:
    with pytest.raises(UsdenoiseError, match="wavelet"):
        WaveletBayesShrink(**params)


def test_too_many_levels_for_the_image() -> None:
    with pytest.raises(UsdenoiseError, match="levels=6 is too many"):
        WaveletBayesShrink(levels=6).denoise(torch.rand(1, 1, 32, 32))
