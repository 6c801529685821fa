from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from usdenoise.core.errors import MissingExtraError, UsdenoiseError
from usdenoise.denoise.classic.bm3d import BM3D, LOG_OFFSET

needs_bm3d = pytest.mark.skipif(
    importlib.util.find_spec("bm3d") is None, reason="the bm3d extra is not installed"
)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def speckled_flat(size: int = 64, level: float = 0.5, var: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.full((size, size), level)
    return np.clip(x + x * rng.normal(0, np.sqrt(var), x.shape), 0, 1)


def assert_same_bm3d(a: np.ndarray, b: np.ndarray) -> None:
    """Two results of the same bm3d computation. The package is not bit-reproducible: over
    30 calls on one 64² array, one call against another differed by up to 5.7e-4 at single
    pixels and 2e-6 on average (measured). So the mean difference is bounded tightly and
    the largest loosely; another route, or sigma 0.06 instead of 0.05, moves the mean by
    ~8.5e-3 (measured)."""
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    assert diff.mean() <= 2e-5, diff.mean()
    assert diff.max() <= 3e-3, diff.max()


@pytest.fixture(scope="module")
def camera() -> tuple[np.ndarray, np.ndarray]:
    """The known figure: camera at 256^2, y = x + x n, n ~ N(0, 0.05), fixed seed."""
    from skimage import data, transform

    x = transform.resize(data.camera() / 255.0, (256, 256), anti_aliasing=True)
    n = np.random.default_rng(0).normal(0.0, np.sqrt(0.05), x.shape)
    return x, np.clip(x + x * n, 0.0, 1.0)


@needs_bm3d
def test_camera_multiplicative_reaches_28_db(camera) -> None:
    x, y = camera
    assert psnr(x, y) == pytest.approx(18.3, abs=0.3)
    out = BM3D().denoise(torch.from_numpy(y).float()[None, None])[0, 0].double().numpy()
    # measured 30.1 dB (the plain route on the same image: 22.4 dB)
    assert psnr(x, out) >= 28.0


@needs_bm3d
def test_plain_route_is_the_package_call() -> None:
    y = speckled_flat(64)
    y[:, 32:] *= 0.5
    out = BM3D(route="plain", sigma=0.05).denoise(torch.from_numpy(y).float()[None, None])
    import bm3d

    ref = np.clip(bm3d.bm3d(y.astype(np.float32).astype(np.float64), 0.05), 0, 1)
    assert_same_bm3d(out[0, 0].numpy(), ref)


@needs_bm3d
@pytest.mark.parametrize("bias", ["mean", "lognormal", "off"])
def test_log_route_matches_the_formula(bias: str) -> None:
    y = speckled_flat(64, seed=1).astype(np.float32).astype(np.float64)
    y[20:40, 20:40] *= 1.6
    y = (y / y.max()).astype(np.float32).astype(np.float64)  # denoisers take [0, 1] only
    sigma = 0.2
    import bm3d

    est = np.exp(bm3d.bm3d(np.log(y + LOG_OFFSET), sigma))
    if bias == "lognormal":
        est *= np.exp(sigma**2 / 2)
    est -= LOG_OFFSET
    if bias == "mean":
        est *= y.mean() / est.mean()
    out = BM3D(sigma=sigma, bias_correction=bias).denoise(torch.from_numpy(y).float()[None, None])
    assert_same_bm3d(out[0, 0].numpy(), np.clip(est, 0, 1))


@needs_bm3d
def test_mean_bias_correction_keeps_the_mean() -> None:
    y = speckled_flat(64, seed=2)
    out = BM3D().denoise(torch.from_numpy(y).float()[None, None])
    assert float(out.mean()) == pytest.approx(y.mean(), rel=1e-4)
    # without it, exp(E[log y]) is biased low by about exp(-sigma^2/2)
    low = BM3D(bias_correction="off").denoise(torch.from_numpy(y).float()[None, None])
    assert float(low.mean()) < 0.99 * y.mean()


@needs_bm3d
@pytest.mark.parametrize("params", [{}, {"route": "plain"}, {"sigma": 0.1}])
def test_constant_stays_constant(params) -> None:
    x = torch.full((1, 1, 48, 48), 0.4)
    out = BM3D(**params).denoise(x)
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)


@needs_bm3d
@pytest.mark.parametrize("route", ["log", "plain"])
def test_flat_speckle_variance_drops(route: str) -> None:
    y = speckled_flat(64, seed=3)
    out = BM3D(route=route).denoise(torch.from_numpy(y).float()[None, None])
    assert float(out.var()) < 0.2 * y.var()


@needs_bm3d
def test_batch_is_processed_image_by_image_and_shape_range() -> None:
    a, b = speckled_flat(40, seed=4), speckled_flat(40, level=0.9, seed=5)
    x = torch.from_numpy(np.stack([a, b])).float()[:, None]
    out = BM3D().denoise(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert_same_bm3d(out[1:].numpy(), BM3D().denoise(x[1:]).numpy())


@pytest.mark.parametrize(
    "params",
    [
        {"route": "sqrt"},
        {"sigma": -0.1},
        {"sigma": 6.0},
        {"bias_correction": "x"},
        {"profile": "deb"},
        {"profile": "refilter"},
        {"sigma": "abc"},
        {"window": 3},
    ],
)
def test_bad_parameters(params) -> None:
    with pytest.raises(UsdenoiseError, match="bm3d"):
        BM3D(**params)


@needs_bm3d
def test_too_small_image() -> None:
    with pytest.raises(UsdenoiseError, match="smaller"):
        BM3D().denoise(torch.rand(1, 1, 4, 4))


def test_missing_package_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "bm3d", None)  # `import bm3d` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"usdenoise\[bm3d\]"):
        BM3D().denoise(torch.rand(1, 1, 16, 16))


@needs_bm3d
@pytest.mark.parametrize("profile", ["np", "vn", "high"])
def test_every_offered_profile_runs_with_a_scalar_sigma(profile: str) -> None:
    y = torch.from_numpy(speckled_flat(32, seed=6)).float()[None, None]
    out = BM3D(profile=profile).denoise(y)
    assert out.shape == y.shape and bool(torch.isfinite(out).all())
    assert float(out.var()) < float(y.var())


def test_noise_estimate_matches_skimage_and_ignores_black_background() -> None:
    """Same as skimage's estimate on noise everywhere; unbiased by a black sector outside."""
    import numpy as np
    from skimage.restoration import estimate_sigma

    from usdenoise.denoise.classic.bm3d import estimate_noise_sigma

    rng = np.random.default_rng(0)
    noisy = 0.5 + 0.1 * rng.standard_normal((128, 128))
    assert abs(estimate_noise_sigma(noisy) - estimate_sigma(noisy)) < 1e-6
    half_black = noisy.copy()
    half_black[:, :64] = 0.0
    assert abs(estimate_noise_sigma(half_black) - 0.1) < 0.01  # skimage's gives about 0.06
    assert estimate_noise_sigma(np.full((32, 32), 0.3)) == 0.0


# ---- noise level from the native speckle estimate (noise="psd", the default) ----------------


def physics_flat(size: int = 64, sigma: float = 0.1, seed: int = 0) -> torch.Tensor:
    from usdenoise.noise.speckle import Physics

    model = Physics(sigma, axial_sigma=1.5, lateral_sigma=2.5)
    return model(torch.full((1, 1, size, size), 0.5), generator=torch.Generator().manual_seed(seed))


@needs_bm3d
def test_psd_default_passes_the_estimated_psd(monkeypatch) -> None:
    import bm3d

    from usdenoise.noise.estimate import estimate_speckle, measure_patches

    y = physics_flat().double()[0, 0].numpy()
    seen = []
    real = bm3d.bm3d

    def spy(z, noise, profile="np"):
        seen.append(np.asarray(noise))
        return real(z, noise, profile=profile)

    monkeypatch.setattr(bm3d, "bm3d", spy)
    out = BM3D().denoise(torch.from_numpy(y).float()[None, None])
    e = estimate_speckle(np.clip(y.astype(np.float32).astype(np.float64), 0, 1))
    z = np.log(y.astype(np.float32).astype(np.float64) + LOG_OFFSET)
    expected = measure_patches(z, e.positions, patch=e.patch).noise_psd(z.shape)
    assert seen[0].shape == y.shape
    np.testing.assert_allclose(seen[0], expected, rtol=1e-5)
    assert float(out.var()) < 0.3 * y.var()


@needs_bm3d
def test_psd_beats_the_white_estimate_on_correlated_speckle() -> None:
    y = physics_flat(seed=1)
    psd = BM3D().denoise(y)
    white = BM3D(noise="white").denoise(y)
    # the finest-band MAD underrates correlated speckle, so the white run keeps more of it
    assert float(psd.var()) < float(white.var())


@needs_bm3d
@pytest.mark.parametrize("noise", ["psd", "white"])
def test_no_noise_warns_and_returns_the_input(noise: str) -> None:
    x = torch.full((1, 1, 48, 48), 0.4)
    with pytest.warns(UserWarning, match="bm3d: .*below"):
        out = BM3D(noise=noise).denoise(x)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


@needs_bm3d
def test_explicit_sigma_skips_the_estimate(monkeypatch) -> None:
    import usdenoise.denoise.classic.bm3d as module

    def boom(*args, **kwargs):
        raise AssertionError("estimate_speckle called")

    monkeypatch.setattr(module, "estimate_speckle", boom)
    out = BM3D(sigma=0.1).denoise(physics_flat(32))
    assert out.shape == (1, 1, 32, 32)


def test_bad_noise_option() -> None:
    with pytest.raises(UsdenoiseError, match="bm3d"):
        BM3D(noise="pink")
