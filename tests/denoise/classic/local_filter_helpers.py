"""Shared checks for the local-statistics and diffusion filter tests (small images only)."""

from __future__ import annotations

import numpy as np
import torch

from usdenoise.denoise.base import Denoiser
from usdenoise.metrics.image import epi


def speckled(clean: torch.Tensor, cv: float, seed: int = 0) -> torch.Tensor:
    """Multiplicative gamma speckle with mean 1 and coefficient of variation `cv`."""
    g = torch.Generator().manual_seed(seed)
    looks = 1.0 / cv**2
    # gamma(looks, 1/looks) via torch's sampler on a seeded generator
    noise = torch._standard_gamma(torch.full(clean.shape, looks, dtype=torch.float64), g)
    return (clean * (noise / looks).float()).clamp(0.0, 1.0)


def flat(value: float = 0.4, size: int = 64, batch: int = 2) -> torch.Tensor:
    return torch.full((batch, 1, size, size), value)


def step(size: int = 64, low: float = 0.25, high: float = 0.65, batch: int = 2) -> torch.Tensor:
    x = torch.full((batch, 1, size, size), low)
    x[..., size // 2 :] = high
    return x


def check_constant(den: Denoiser, value: float = 0.5) -> None:
    x = torch.full((2, 1, 32, 32), value)
    y = den.denoise(x)
    assert torch.allclose(y, x, atol=1e-5), (y - x).abs().max()


def check_shape_and_range(den: Denoiser) -> None:
    x = torch.rand(3, 1, 33, 40, generator=torch.Generator().manual_seed(1))
    y = den.denoise(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.isfinite(y).all()


def variance_ratio(den: Denoiser, *, cv: float = 0.3) -> float:
    """Output / input variance on a speckled flat image (interior, away from borders)."""
    noisy = speckled(flat(), cv, seed=2)
    out = den.denoise(noisy)
    inner = (..., slice(8, -8), slice(8, -8))
    return float(out[inner].var() / noisy[inner].var())


def edge_epi(den: Denoiser, *, cv: float = 0.2, seed: int = 3) -> float:
    """Mean EPI (vs the clean step) of the filter's output on a speckled step edge."""
    clean = step()
    noisy = speckled(clean, cv, seed=seed)
    return float(epi(den.denoise(noisy), clean).mean())


def check_batch_independent(den: Denoiser) -> None:
    """Each image is filtered on its own (per-image noise estimate), whatever the batch."""
    x = speckled(step(size=40, batch=3), 0.3, seed=4)
    x[1] = speckled(flat(0.6, 40, 1), 0.1, seed=5)[0]
    together = den.denoise(x)
    alone = torch.cat([den.denoise(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)


def window_loop(img: np.ndarray, window: int, fn) -> np.ndarray:
    """Straightforward per-pixel reference: fn(window values [w, w], centre value) -> out."""
    r = window // 2
    p = np.pad(img.astype(np.float64), r, mode="reflect")  # numpy reflect = our padding
    out = np.empty(img.shape, dtype=np.float64)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            out[i, j] = fn(p[i : i + window, j : j + window], float(img[i, j]))
    return out
