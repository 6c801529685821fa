from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_nl_means, estimate_sigma

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.nlm import NonLocalMeans


def speckled(size: int = 64, level: float = 0.5, seed: int = 0) -> np.ndarray:
    """Flat region with multiplicative speckle (y = x + x n, var 0.05), float32 values."""
    rng = np.random.default_rng(seed)
    x = np.full((size, size), level)
    y = np.clip(x + x * rng.normal(0, np.sqrt(0.05), x.shape), 0, 1)
    return y.astype(np.float32).astype(np.float64)


def scene(size: int = 64, seed: int = 0) -> np.ndarray:
    y = speckled(size, 0.3, seed)
    y[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] *= 2.5
    return np.clip(y, 0, 1).astype(np.float32).astype(np.float64)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).float()[None, None]


def test_matches_scikit_image_with_estimated_h() -> None:
    y = scene()
    sigma = float(estimate_sigma(y))
    ref = denoise_nl_means(y, patch_size=5, patch_distance=6, h=0.8 * sigma, sigma=sigma)
    out = NonLocalMeans().denoise(as_tensor(y))[0, 0].numpy()
    np.testing.assert_allclose(out, np.clip(ref, 0, 1), atol=1e-6)  # float32 output


def test_matches_scikit_image_with_given_h() -> None:
    y = scene(seed=1)
    ref = denoise_nl_means(y, patch_size=3, patch_distance=4, h=0.05, sigma=0.02)
    out = NonLocalMeans(patch_size=3, patch_distance=4, h=0.05, sigma=0.02).denoise(as_tensor(y))
    np.testing.assert_allclose(out[0, 0].numpy(), np.clip(ref, 0, 1), atol=1e-6)


def test_constant_stays_constant() -> None:
    x = torch.full((1, 1, 32, 32), 0.6)
    torch.testing.assert_close(NonLocalMeans().denoise(x), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(NonLocalMeans(h=0.1).denoise(x), x, atol=1e-6, rtol=0)


def test_flat_speckle_variance_drops_and_stronger_h_smooths_more() -> None:
    y = speckled(64, seed=2)
    weak = NonLocalMeans().denoise(as_tensor(y))
    strong = NonLocalMeans(h_factor=2.0).denoise(as_tensor(y))
    assert float(weak.var()) < 0.5 * y.var()
    assert float(strong.var()) < float(weak.var())


def test_shape_range_and_batch() -> None:
    x = torch.from_numpy(np.stack([scene(40, 3), scene(40, 4)])).float()[:, None]
    out = NonLocalMeans().denoise(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    torch.testing.assert_close(out[1:], NonLocalMeans().denoise(x[1:]), atol=0, rtol=0)


@pytest.mark.parametrize(
    "params",
    [
        {"patch_size": 0},
        {"patch_size": 2.5},
        {"patch_distance": 0},
        {"h": -1.0},
        {"h_factor": -0.1},
        {"sigma": 2.0},
        {"sigma": "x"},
        {"radius": 3},
    ],
)
def test_bad_parameters(params) -> None:
    with pytest.raises(UsdenoiseError, match="nlm"):
        NonLocalMeans(**params)


def test_too_small_image() -> None:
    with pytest.raises(UsdenoiseError, match="smaller"):
        NonLocalMeans(patch_size=7).denoise(torch.rand(1, 1, 5, 5))


def physics_flat(size: int = 64, sigma: float = 0.1, seed: int = 0) -> np.ndarray:
    from usdenoise.noise.speckle import Physics

    model = Physics(sigma, axial_sigma=1.5, lateral_sigma=2.5)
    y = model(torch.full((1, 1, size, size), 0.5), generator=torch.Generator().manual_seed(seed))
    return y[0, 0].double().numpy()


def test_default_sigma_is_the_speckle_estimate_level() -> None:
    from usdenoise.noise.estimate import estimate_speckle

    y = physics_flat()
    level = estimate_speckle(y).level
    assert level == pytest.approx(0.1, rel=0.2)
    ref = denoise_nl_means(y, patch_size=5, patch_distance=6, h=0.8 * level, sigma=level)
    out = NonLocalMeans().denoise(as_tensor(y))[0, 0].numpy()
    np.testing.assert_allclose(out, np.clip(ref, 0, 1), atol=1e-5)


def test_wavelet_option_is_the_old_estimate() -> None:
    y = physics_flat(seed=1)
    sigma = float(estimate_sigma(y))
    ref = denoise_nl_means(y, patch_size=5, patch_distance=6, h=0.8 * sigma, sigma=sigma)
    out = NonLocalMeans(noise="wavelet").denoise(as_tensor(y))[0, 0].numpy()
    np.testing.assert_allclose(out, np.clip(ref, 0, 1), atol=1e-5)


def test_no_noise_warns() -> None:
    x = torch.full((1, 1, 32, 32), 0.6)
    with pytest.warns(UserWarning, match="nlm: .*below"):
        out = NonLocalMeans().denoise(x)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
