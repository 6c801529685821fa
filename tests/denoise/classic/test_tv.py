from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_tv_chambolle

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.tv import TotalVariation


def speckled(size: int = 64, level: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.full((size, size), level)
    y = np.clip(x + x * rng.normal(0, np.sqrt(0.05), x.shape), 0, 1)
    return y.astype(np.float32).astype(np.float64)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).float()[None, None]


@pytest.mark.parametrize("weight", [0.05, 0.3])
def test_matches_scikit_image(weight: float) -> None:
    y = speckled(48, 0.3, seed=1)
    y[10:30, 12:40] = np.clip(y[10:30, 12:40] * 2.5, 0, 1)
    ref = denoise_tv_chambolle(y, weight=weight, eps=2e-4, max_num_iter=200)
    out = TotalVariation(weight=weight).denoise(as_tensor(y))[0, 0].numpy()
    np.testing.assert_allclose(out, np.clip(ref, 0, 1), atol=1e-6)  # float32 output


def test_constant_stays_constant() -> None:
    x = torch.full((1, 1, 32, 32), 0.3)
    torch.testing.assert_close(TotalVariation(weight=1.0).denoise(x), x, atol=1e-6, rtol=0)


def test_flat_speckle_variance_drops_more_with_weight() -> None:
    y = speckled(64, seed=2)
    light = TotalVariation(weight=0.05).denoise(as_tensor(y))
    heavy = TotalVariation(weight=0.3).denoise(as_tensor(y))
    assert float(light.var()) < 0.5 * y.var()
    assert float(heavy.var()) < float(light.var())


def test_shape_range_and_batch() -> None:
    x = torch.from_numpy(np.stack([speckled(32, 0.8, 3), speckled(32, 0.2, 4)])).float()[:, None]
    out = TotalVariation().denoise(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    torch.testing.assert_close(out[1:], TotalVariation().denoise(x[1:]), atol=0, rtol=0)


@pytest.mark.parametrize(
    "params",
    [
        {"weight": 0.0},
        {"weight": -1},
        {"max_iterations": 0},
        {"max_iterations": 1.5},
        {"eps": 0.0},
        {"weight": "heavy"},
        {"lambda": 1},
    ],
)
def test_bad_parameters(params) -> None:
    with pytest.raises(UsdenoiseError, match="tv"):
        TotalVariation(**params)
