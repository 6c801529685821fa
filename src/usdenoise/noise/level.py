"""The speckle level a network is told to remove, and correlated speckle-like noise.

`estimate_level(x)` measures how much speckle an image shows: the median standard
deviation of `tile` x `tile` tiles in homogeneous tissue, in displayed grey levels (0-1).
Homogeneous tiles are those inside the scan sector (no black pixel, mean in [0.04, 0.96])
whose mean gradient magnitude after a Gaussian blur (sigma = tile / 4) lies in the lowest
`quantile` of the valid tiles; with fewer than `MIN_TILES` valid tiles the level is 0 (and
`level_found` is False). It is a plain batched torch function, so training can measure every
noisy crop the same way inference measures a whole scan.

The level-conditioned networks (FFDNet style, Zhang et al., IEEE TIP 2018) take it as a
constant second input channel: "remove speckle of this level". Training pairs carry the
level of the speckle that was *added* (`added_level`: the quadrature difference of the
levels measured on the noisy and the clean image), so a scan that already carries native
speckle learns to lose only what was added, while a user's scan at inference is told to
lose the level it shows.

`correlated_noise` draws zero-mean Gaussian noise with a separable Gaussian correlation
(widths `axial` along rows = depth, `lateral` along columns) and unit standard deviation:
a stand-in for native speckle grain in the displayed (log-compressed) image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from usdenoise.core.tensors import check_batch

TILE = 16
QUANTILE = 0.3
MIN_TILES = 4
#: the level map fed to a network is `level * LEVEL_SCALE` (values of order one)
LEVEL_SCALE = 10.0


def _gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, axial: float, lateral: float) -> torch.Tensor:
    """Separable Gaussian blur of `x[B,1,H,W]` (reflect padding); sigma 0 skips an axis."""
    if axial > 0:
        k = _gaussian_kernel(axial, x.device, x.dtype)
        x = F.conv2d(F.pad(x, (0, 0, k.numel() // 2, k.numel() // 2), mode="reflect"),
                     k.view(1, 1, -1, 1))
    if lateral > 0:
        k = _gaussian_kernel(lateral, x.device, x.dtype)
        x = F.conv2d(F.pad(x, (k.numel() // 2, k.numel() // 2, 0, 0), mode="reflect"),
                     k.view(1, 1, 1, -1))
    return x


def tile_statistics(x: torch.Tensor, tile: int = TILE
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per tile: standard deviation, mean gradient of the blurred image, and validity."""
    x = check_batch(x, "estimate_level", channels=1).float()
    h, w = (x.shape[-2] // tile) * tile, (x.shape[-1] // tile) * tile
    if h == 0 or w == 0:
        empty = x.new_zeros((x.shape[0], 0))
        return empty, empty, empty.bool()
    x = x[..., :h, :w]
    mean = F.avg_pool2d(x, tile)
    std = (F.avg_pool2d(x * x, tile) - mean * mean).clamp(min=0).sqrt()
    smooth = _blur(x, tile / 4, tile / 4)
    gy, gx = torch.gradient(smooth, dim=(-2, -1))
    structure = F.avg_pool2d(torch.hypot(gx, gy), tile)
    lowest = -F.max_pool2d(-x, tile)
    valid = (lowest > 0.5 / 255) & (mean > 0.04) & (mean < 0.96)
    return std.flatten(1), structure.flatten(1), valid.flatten(1)


def estimate_level(x: torch.Tensor, *, tile: int = TILE, quantile: float = QUANTILE
                   ) -> torch.Tensor:
    """Speckle level of each image of `x[B,1,H,W]`: a tensor `[B]` (0 where none found)."""
    std, structure, valid = tile_statistics(x, tile)
    if std.shape[1] == 0:
        return x.new_zeros(x.shape[0], dtype=torch.float32)
    nan = torch.tensor(float("nan"), dtype=std.dtype, device=std.device)
    cut = torch.nanquantile(torch.where(valid, structure, nan), quantile, dim=1, keepdim=True)
    chosen = torch.where(valid & (structure <= cut), std, nan)
    level = torch.nanmedian(chosen, dim=1).values
    enough = valid.sum(1) >= MIN_TILES
    return torch.where(enough, level, torch.zeros_like(level)).float()


def added_level(noisy_level: torch.Tensor, clean_level: torch.Tensor) -> torch.Tensor:
    """The level of speckle added to an image: sqrt(max(noisy² − clean², 0))."""
    return (noisy_level.square() - clean_level.square()).clamp(min=0).sqrt()


def level_map(level: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Constant `[B,1,H,W]` maps of `level * LEVEL_SCALE`, shaped and typed as `like`."""
    value = level.to(like.device, like.dtype).view(-1, 1, 1, 1) * LEVEL_SCALE
    return value.expand(like.shape[0], 1, *like.shape[-2:])


def correlated_noise(shape: tuple[int, ...], *, axial: float, lateral: float,
                     generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Zero-mean, unit-variance Gaussian noise `[B,1,H,W]` with a Gaussian correlation of
    widths `axial` (rows) and `lateral` (columns) in pixels (0: white along that axis)."""
    where = generator.device if generator is not None else torch.device(device)
    white = torch.randn(shape, generator=generator, device=where).to(device)
    field = _blur(white, axial, lateral)
    gain = 1.0
    for sigma in (axial, lateral):
        if sigma > 0:  # the blur divides the variance by sum(k²) per axis
            gain *= float(_gaussian_kernel(sigma, torch.device("cpu"), torch.float64)
                          .square().sum())
    return field / math.sqrt(gain)
