from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.bilateral import Bilateral


def speckled(size: int = 64, level: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.full((size, size), level)
    return np.clip(x + x * rng.normal(0, np.sqrt(0.05), x.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("params", [{}, {"diameter": 5, "sigma_color": 0.3, "sigma_space": 1.5}])
def test_matches_opencv(params) -> None:
    y = speckled(64, 0.3, seed=1)
    y[16:48, 8:40] = np.clip(y[16:48, 8:40] * 2.5, 0, 1)
    ref = cv2.bilateralFilter(
        y, params.get("diameter", 9), params.get("sigma_color", 0.1), params.get("sigma_space", 3.0)
    )
    out = Bilateral(**params).denoise(torch.from_numpy(y)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(out, np.clip(ref, 0, 1), atol=1e-7)


def test_constant_stays_constant() -> None:
    x = torch.full((1, 1, 32, 32), 0.45)
    torch.testing.assert_close(Bilateral().denoise(x), x, atol=1e-6, rtol=0)


def test_flat_speckle_variance_drops() -> None:
    y = speckled(64, seed=2)
    out = Bilateral(sigma_color=0.3).denoise(torch.from_numpy(y)[None, None])
    assert float(out.var()) < 0.5 * float(y.var())


def test_step_edge_is_kept() -> None:
    # a 0.2 -> 0.8 step: differences of 0.6 get weight exp(-0.6^2 / (2 * 0.1^2)) ~ 1.5e-8
    x = torch.full((1, 1, 32, 32), 0.2)
    x[..., 16:] = 0.8
    torch.testing.assert_close(Bilateral().denoise(x), x, atol=1e-5, rtol=0)


def test_shape_range_and_batch() -> None:
    x = torch.from_numpy(np.stack([speckled(32, 0.8, 3), speckled(32, 0.2, 4)]))[:, None]
    out = Bilateral().denoise(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    torch.testing.assert_close(out[1:], Bilateral().denoise(x[1:]), atol=0, rtol=0)


@pytest.mark.parametrize(
    "params",
    [
        {"diameter": 8},
        {"diameter": 1},
        {"diameter": 33},
        {"sigma_color": 0.0},
        {"sigma_space": -1.0},
        {"sigma_space": "wide"},
        {"d": 5},
    ],
)
def test_bad_parameters(params) -> None:
    with pytest.raises(UsdenoiseError, match="bilateral"):
        Bilateral(**params)


def test_too_small_image() -> None:
    with pytest.raises(UsdenoiseError, match="smaller"):
        Bilateral(diameter=9).denoise(torch.rand(1, 1, 3, 3))
