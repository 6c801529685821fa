"""A level map that varies over the scan: more speckle removal in homogeneous tissue, less at
structures.

A level-conditioned network takes its level as a map (FFDNet style, Zhang et al., IEEE TIP
2018), so the level need not be one number per image. With `smooth = s > 0` the map is
`level * (1 + s)` where the tissue is flat and `level / (1 + s)` at structures (edges,
reflectors, the skull), blended by `flatness`. The network then removes more of the speckle
where there is no anatomy to lose and less where there is, the rule the adaptive filters
(Lee, Frost, Kuan) apply to their window size. `smooth = 0` gives the constant map of
`level_map` exactly.

`flatness(x)` is 1 in homogeneous tissue and 0 at structures: with G the gradient magnitude
of the image after a Gaussian of `sigma` px (which averages most of the speckle grain away),
and g the median of G over the imaged content (smoothed value above 0.02: the black margin
of a sector scan does not count), it is `clamp((knee - G/g) / (knee - 1), 0, 1)`, smoothed
by the same Gaussian so the map has no sharp seams. A pixel whose gradient is `knee` times
the typical one counts as structure.
"""

from __future__ import annotations

import torch

from usdenoise.noise.level import fitting_sigma, gaussian_blur, level_map

#: Gaussian σ (px) of `flatness`: wider than the speckle grain of a scan (a few px)
FLATNESS_SIGMA = 3.0
#: gradient, in multiples of the image's median, at which a pixel counts as structure
FLATNESS_KNEE = 3.0
#: smoothed values at or below this are the black margin, not imaged content
CONTENT_FLOOR = 0.02


def _gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|∇x| by central differences (one-sided at the border) of `x[B,1,H,W]`."""
    dy, dx = torch.gradient(x, dim=(-2, -1))
    return torch.sqrt(dy * dy + dx * dx)


def flatness(x: torch.Tensor, *, sigma: float = FLATNESS_SIGMA,
             knee: float = FLATNESS_KNEE) -> torch.Tensor:
    """`[B,1,H,W]` in [0, 1]: 1 in homogeneous tissue, 0 at structures (module docstring).
    Each image is normalised by its own median gradient."""
    if x.shape[-2] < 2 or x.shape[-1] < 2:
        return torch.ones_like(x)
    sigma = fitting_sigma(sigma, x)
    smooth = gaussian_blur(x, sigma, sigma)
    grad = _gradient_magnitude(smooth)
    content = smooth > CONTENT_FLOOR
    nan = torch.tensor(float("nan"), dtype=grad.dtype, device=grad.device)
    typical = torch.nanmedian(torch.where(content, grad, nan).flatten(1), dim=1).values
    # an image without content above the floor: its median over every pixel (computed only
    # then: a median of a whole frame costs ~4 ms)
    if bool(torch.isnan(typical).any()):
        typical = torch.where(torch.isnan(typical), grad.flatten(1).median(dim=1).values,
                              typical)
    ratio = grad / typical.clamp(min=1e-12).view(-1, 1, 1, 1)
    weight = ((knee - ratio) / (knee - 1.0)).clamp(0.0, 1.0)
    return gaussian_blur(weight, sigma, sigma).clamp(0.0, 1.0)


def adaptive_level_map(level: torch.Tensor, x: torch.Tensor, smooth: float, *,
                       low: float | None = None, high: float | None = None) -> torch.Tensor:
    """`[B,1,H,W]` level maps (`level_map`: times its LEVEL_SCALE) for `x[B,1,H,W]`:
    `level[B]` scaled from `1/(1 + smooth)` at structures to `1 + smooth` in flat tissue,
    then clamped per pixel to [`low`, `high`] (the network's trained range) where given."""
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    level = level.to(x.device, x.dtype).view(-1, 1, 1, 1)
    if smooth == 0:
        per_pixel = level.expand(x.shape[0], 1, *x.shape[-2:])
    else:
        top, bottom = 1.0 + smooth, 1.0 / (1.0 + smooth)
        per_pixel = level * (bottom + (top - bottom) * flatness(x))
    if low is not None or high is not None:
        per_pixel = per_pixel.clamp(low, high)
    return level_map(per_pixel, x)
