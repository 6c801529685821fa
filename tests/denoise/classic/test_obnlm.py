from __future__ import annotations

import numpy as np
import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.obnlm import OBNLM, estimate_model_sigma


def speckled(size: int = 64, level: float = 0.5, seed: int = 0) -> np.ndarray:
    """Flat region with multiplicative speckle (y = x + x n, var 0.05)."""
    rng = np.random.default_rng(seed)
    x = np.full((size, size), level)
    return np.clip(x + x * rng.normal(0, np.sqrt(0.05), x.shape), 0, 1).astype(np.float32)


def reference(img, *, m, a, n, gamma, h, mean_ratio, var_ratio) -> np.ndarray:
    """Plain-loop blockwise Bayesian NLM, written from the paper, for checking the
    vectorised version: one block at a time, one candidate at a time."""
    u = img.astype(np.float64) * 255.0
    height, width = u.shape
    ey, ex = (-(height - 1)) % n, (-(width - 1)) % n
    u = np.pad(u, ((0, ey), (0, ex)), mode="reflect")
    hh, ww = u.shape
    r = m + a
    p = np.pad(u, r, mode="reflect")
    eps = 1e-6
    total = np.zeros_like(u)
    count = np.zeros_like(u)

    def block(cy, cx):  # block centred on image pixel (cy, cx)
        return p[cy + r - a : cy + r + a + 1, cx + r - a : cx + r + a + 1]

    for cy in range(0, hh, n):
        for cx in range(0, ww, n):
            bi = block(cy, cx)
            weights, blocks = [], []
            for dy in range(-m, m + 1):
                for dx in range(-m, m + 1):
                    bj = block(cy + dy, cx + dx)
                    d = np.mean((bi - bj) ** 2 / (np.maximum(bj, 0) ** (2 * gamma) + eps))
                    w = np.exp(-d / h**2)
                    rm = (bi.mean() + eps) / (bj.mean() + eps)
                    rv = (bi.var() + eps) / (bj.var() + eps)
                    if mean_ratio > 0 or var_ratio > 0:
                        if not (mean_ratio < rm < 1 / max(mean_ratio, eps)):
                            w = 0.0
                        if not (var_ratio < rv < 1 / max(var_ratio, eps)):
                            w = 0.0
                    if dy == 0 and dx == 0:
                        w = None  # filled below with the largest other weight
                    weights.append(w)
                    blocks.append(bj)
            others = [w for w in weights if w is not None]
            weights = [max(max(others), eps) if w is None else w for w in weights]
            est = sum(w * b for w, b in zip(weights, blocks, strict=True)) / sum(weights)
            # scatter the restored block onto the pixels it covers (inside the image)
            for qy in range(-a, a + 1):
                for qx in range(-a, a + 1):
                    y, x = cy + qy, cx + qx
                    if 0 <= y < hh and 0 <= x < ww:
                        total[y, x] += est[qy + a, qx + a]
                        count[y, x] += 1
    return (total / count)[:height, :width] / 255.0


@pytest.mark.parametrize(
    "params",
    [
        {"search_radius": 2, "block_radius": 1, "step": 2, "h": 4.0},
        {"search_radius": 3, "block_radius": 1, "step": 3, "h": 6.0, "gamma": 0.8},
        {
            "search_radius": 2,
            "block_radius": 2,
            "step": 1,
            "h": 3.0,
            "mean_ratio": 0.0,
            "var_ratio": 0.0,
        },
    ],
)
def test_matches_the_plain_loop_reference(params) -> None:
    img = speckled(13, 0.3, seed=1)  # odd size: the centre grid needs the extension
    img[3:9, 4:11] = np.clip(img[3:9, 4:11] * 2.5, 0, 1)
    den = OBNLM(**params)
    out = den.denoise(torch.from_numpy(img)[None, None].double())[0, 0].numpy()
    ref = reference(
        img,
        m=den.search_radius,
        a=den.block_radius,
        n=den.step,
        gamma=den.gamma,
        h=den.h,
        mean_ratio=den.mean_ratio,
        var_ratio=den.var_ratio,
    )
    np.testing.assert_allclose(out, np.clip(ref, 0, 1), atol=1e-6)


def test_sigma_estimate_of_the_speckle_model() -> None:
    # u = v + sqrt(v) * sigma * eta on the 0-255 scale, sigma = 3, two flat levels
    rng = np.random.default_rng(0)
    v = np.full((128, 128), 60.0)
    v[:, 64:] = 160.0
    u = v + np.sqrt(v) * 3.0 * rng.standard_normal(v.shape)
    assert estimate_model_sigma(u, 0.5) == pytest.approx(3.0, rel=0.1)


def test_constant_stays_constant() -> None:
    x = torch.full((1, 1, 32, 32), 0.35)
    torch.testing.assert_close(OBNLM().denoise(x), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(OBNLM(h=5.0).denoise(x), x, atol=1e-6, rtol=0)


def test_flat_speckle_variance_drops_and_h_orders_it() -> None:
    y = torch.from_numpy(speckled(64, seed=2))[None, None]
    default = OBNLM().denoise(y)
    strong = OBNLM(h_factor=2.0).denoise(y)
    assert float(default.var()) < 0.2 * float(y.var())
    assert float(strong.var()) < float(default.var())


def test_denoising_raises_psnr_on_a_speckled_scene() -> None:
    rng = np.random.default_rng(3)
    clean = np.full((64, 64), 0.25)
    clean[16:48, 16:48] = 0.7
    noisy = np.clip(clean + clean * rng.normal(0, np.sqrt(0.05), clean.shape), 0, 1)
    out = OBNLM().denoise(torch.from_numpy(noisy).float()[None, None])[0, 0].double().numpy()

    def psnr(a):
        return 10 * np.log10(1 / np.mean((a - clean) ** 2))

    assert psnr(out) > psnr(noisy) + 6.0


def test_shape_range_batch_and_non_square() -> None:
    a, b = speckled(40, 0.8, 3)[:, :33], speckled(40, 0.2, 4)[:, :33]
    x = torch.from_numpy(np.stack([a, b]))[:, None]
    out = OBNLM().denoise(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    torch.testing.assert_close(out[1:], OBNLM().denoise(x[1:]), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "params",
    [
        {"search_radius": 0},
        {"search_radius": 21},
        {"block_radius": -1},
        {"step": 0},
        {"step": 4, "block_radius": 1},
        {"gamma": 1.5},
        {"h": 0.0},
        {"h_factor": 0.0},
        {"mean_ratio": 1.2},
        {"var_ratio": -0.1},
        {"search_radius": 2.5},
        {"M": 7},
    ],
)
def test_bad_parameters(params) -> None:
    with pytest.raises(UsdenoiseError, match="obnlm"):
        OBNLM(**params)


def test_too_small_image() -> None:
    with pytest.raises(UsdenoiseError, match="smaller"):
        OBNLM().denoise(torch.rand(1, 1, 8, 8))


def physics_flat(size: int = 64, sigma: float = 0.1, seed: int = 0) -> torch.Tensor:
    from usdenoise.noise.speckle import Physics

    model = Physics(sigma, axial_sigma=1.5, lateral_sigma=2.5)
    return model(torch.full((1, 1, size, size), 0.5), generator=torch.Generator().manual_seed(seed))


def test_default_h_comes_from_the_speckle_estimate() -> None:
    from usdenoise.denoise.classic.obnlm import stabilise
    from usdenoise.noise.estimate import estimate_speckle, measure_patches

    y = physics_flat()
    u = y[0, 0].double().numpy() * 255.0
    e = estimate_speckle(y[0, 0].double().numpy())
    sigma = measure_patches(stabilise(u, 0.5), e.positions, patch=e.patch).level
    expected = OBNLM(h=float(np.sqrt(2.0) * sigma)).denoise(y)
    torch.testing.assert_close(OBNLM().denoise(y), expected, atol=1e-5, rtol=0)
    assert float(OBNLM().denoise(y).var()) < 0.5 * float(y.var())


def test_no_noise_warns() -> None:
    x = torch.full((1, 1, 32, 32), 0.35)
    with pytest.warns(UserWarning, match="obnlm: .*below"):
        out = OBNLM().denoise(x)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
