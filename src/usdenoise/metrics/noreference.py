"""No-reference figures for real scans: speckle in homogeneous tissue, skull-edge contrast and
the method-noise test.

Unlike the batch metrics of `metrics.image`, these work on one image at a time (a tensor or
array `[H, W]`, `[1, H, W]` or `[1, 1, H, W]`, values in [0, 1]) and return a float, or None
where the figure does not exist for that image (no homogeneous patch, no mask border,
nothing removed). The regions (patches, scan sector, mask border) are found once on the
*input* image and reused on every output, so all methods are measured on the same pixels.

- `scan_sector(image)`: the imaged sector (fan): smoothed image above a floor, holes filled,
  largest region.
- `find_homogeneous_patches(image)`: square tissue patches without structure (the patch
  finder, see its docstring).
- `speckle_index(image, patches)` = mean over patches of σ/μ; `patch_enl` = mean of μ²/σ².
- `edge_contrast(image, mask)`: mean gradient magnitude (Gaussian σ = 2 px) on the mask
  border; `edge_ratio(output, original, mask)` = output's / original's.
- `method_noise_correlation(original, output)`: Pearson correlation, over the sector, between
  the residual's local energy G(r²) and the original's local gradient magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from usdenoise.core.errors import UsdenoiseError

#: Gaussian σ (px) of the derivative in `edge_contrast` and of the smoothing in the
#: method-noise test
EDGE_SIGMA = 2.0


@dataclass(frozen=True)
class Patch:
    """Rows y0:y1, columns x0:x1 of an image; `score` is its structure (lower: flatter)."""

    y0: int
    x0: int
    y1: int
    x1: int
    score: float = 0.0

    def view(self, array: np.ndarray) -> np.ndarray:
        return array[self.y0:self.y1, self.x0:self.x1]


def as_array(image: Any, *, what: str = "image") -> np.ndarray:
    """A float64 array [H, W] from a tensor/array [H, W], [1, H, W] or [1, 1, H, W]."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().double().numpy()
    array = np.asarray(image, dtype=np.float64)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise UsdenoiseError(f"{what}: expected one image [H, W] (or [1, H, W]), "
                             f"got shape {tuple(np.shape(image))}")
    return array


def _as_bool(mask: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    m = as_array(mask, what=what) > 0
    if m.shape != shape:
        raise UsdenoiseError(f"{what}: shape {m.shape} does not fit the image {shape}")
    return m


def scan_sector(image: Any, *, floor: float = 0.02) -> np.ndarray:
    """The imaged sector, bool [H, W]: pixels whose Gaussian-smoothed value (σ = 1 % of the
    smaller side, at least 2 px) exceeds `floor`, holes filled (dark fluid inside the fan
    belongs to it), the largest connected region. An image that is black everywhere gives an
    empty sector; one without black margins gives (nearly) the whole image."""
    array = as_array(image)
    sigma = max(2.0, 0.01 * min(array.shape))
    bright = ndimage.gaussian_filter(array, sigma, mode="nearest") > floor
    if not bright.any():
        return bright
    filled = ndimage.binary_fill_holes(bright)
    labels, n = ndimage.label(filled)
    if n > 1:
        sizes = ndimage.sum(filled, labels, index=np.arange(1, n + 1))
        filled = labels == (1 + int(np.argmax(sizes)))
    return filled


def default_patch_size(shape: Sequence[int]) -> int:
    """Patch side: 1/16 of the smaller image side, at least 8 px (34 px on 800 × 540 HC18)."""
    return max(8, round(min(shape[-2:]) / 16))


def find_homogeneous_patches(
    image: Any,
    *,
    size: int | None = None,
    within: Any | None = None,
    max_patches: int = 8,
    max_structure: float = 0.15,
    min_mean: float | None = None,
) -> list[Patch]:
    """Homogeneous tissue patches of `image`: where speckle, not anatomy, makes the variation.

    The image is cut into a grid of non-overlapping `size` × `size` tiles (default
    `default_patch_size`). A tile is a candidate when it lies wholly inside `within`
    (default `scan_sector(image)`) and its mean is at least `min_mean` (default: the median
    of the sector, i.e. tissue, not anechoic fluid or the black margin). Its *structure* is
    the standard deviation, inside the tile, of the image smoothed with a Gaussian of
    σ = size / 4, divided by the tile's mean: speckle (grain of a few pixels) averages out
    under that smoothing, while an edge, a gradient or a bright reflector does not. Tiles
    with structure ≤ `max_structure` are kept, flattest first, at most `max_patches`.
    Returns [] when none qualifies (the caller reports the figure as missing).
    """
    array = as_array(image)
    h, w = array.shape
    size = default_patch_size(array.shape) if size is None else int(size)
    if size < 2:
        raise UsdenoiseError(f"find_homogeneous_patches: size must be >= 2, got {size}")
    region = scan_sector(array) if within is None else _as_bool(within, array.shape, "within")
    if not region.any() or size > min(h, w):
        return []
    floor = float(np.median(array[region])) if min_mean is None else float(min_mean)
    smooth = ndimage.gaussian_filter(array, size / 4.0, mode="reflect")
    candidates: list[Patch] = []
    for y0 in range(0, h - size + 1, size):
        for x0 in range(0, w - size + 1, size):
            patch = Patch(y0, x0, y0 + size, x0 + size)
            mean = float(patch.view(array).mean())
            if not patch.view(region).all() or mean <= 0 or mean < floor:
                continue
            score = float(patch.view(smooth).std()) / mean
            if score <= max_structure:
                candidates.append(Patch(y0, x0, y0 + size, x0 + size, score))
    candidates.sort(key=lambda p: p.score)
    return candidates[:max_patches]


def _patch_stats(image: Any, patches: Sequence[Patch]) -> list[tuple[float, float]]:
    array = as_array(image)
    return [(float(p.view(array).mean()), float(p.view(array).var())) for p in patches]


def speckle_index(image: Any, patches: Sequence[Patch]) -> float | None:
    """Mean over the patches of σ/μ (population σ); None without patches. Lower is smoother;
    fully developed speckle (Rayleigh amplitude) gives ≈ 0.52."""
    stats = [(m, v) for m, v in _patch_stats(image, patches) if m > 0]
    if not stats:
        return None
    return float(np.mean([math.sqrt(v) / m for m, v in stats]))


def patch_enl(image: Any, patches: Sequence[Patch]) -> float | None:
    """Mean over the patches of μ²/σ² (equivalent number of looks); None without patches, inf
    if a patch is constant. Gamma(L)-distributed intensity gives L."""
    stats = _patch_stats(image, patches)
    if not stats:
        return None
    return float(np.mean([m * m / v if v > 0 else math.inf for m, v in stats]))


def mask_border(mask: Any) -> np.ndarray:
    """The annotated outline, bool [H, W]: foreground pixels with a 4-neighbour in the
    background (or at the image edge)."""
    m = as_array(mask, what="mask") > 0
    return m & ~ndimage.binary_erosion(m, border_value=0)


def edge_contrast(image: Any, mask: Any, *, sigma: float = EDGE_SIGMA) -> float | None:
    """Mean gradient magnitude of the image after a Gaussian of `sigma` px
    (`scipy.ndimage.gaussian_gradient_magnitude`) over the border of `mask` (the skull
    outline for HC18); None if the mask has no border."""
    array = as_array(image)
    border = mask_border(mask)
    if border.shape != array.shape:
        raise UsdenoiseError(f"mask: shape {border.shape} does not fit the image {array.shape}")
    if not border.any():
        return None
    grad = ndimage.gaussian_gradient_magnitude(array, sigma, mode="reflect")
    return float(grad[border].mean())


def edge_ratio(output: Any, original: Any, mask: Any, *, sigma: float = EDGE_SIGMA
               ) -> float | None:
    """`edge_contrast(output) / edge_contrast(original)` on the same border: 1 = edge kept, < 1
    blurred; None without a border or with a flat input there."""
    before = edge_contrast(original, mask, sigma=sigma)
    after = edge_contrast(output, mask, sigma=sigma)
    if before is None or after is None or before <= 0:
        return None
    return after / before


def method_noise_correlation(original: Any, output: Any, *, within: Any | None = None,
                             sigma: float = EDGE_SIGMA) -> float | None:
    """The method-noise test: Pearson correlation over `within` (default: the original's
    `scan_sector`) of E = G_σ(r²), the residual r = original − output's local energy, and
    G = G_σ(|∇ G_σ original|), the original's local gradient magnitude. A residual of pure speckle
    is unrelated to the anatomy (≈ 0); one that removed edges follows them (→ 1). Lower is
    better. None when nothing was removed (r ≈ 0) or the region has < 2 pixels."""
    x = as_array(original, what="original")
    y = as_array(output, what="output")
    if x.shape != y.shape:
        raise UsdenoiseError(f"output: shape {y.shape} does not fit the original {x.shape}")
    region = scan_sector(x) if within is None else _as_bool(within, x.shape, "within")
    if int(region.sum()) < 2:
        return None
    r = x - y
    if float(np.abs(r[region]).max()) < 1e-6:
        return None
    energy = ndimage.gaussian_filter(r * r, sigma, mode="reflect")[region]
    grad = ndimage.gaussian_filter(
        ndimage.gaussian_gradient_magnitude(x, sigma, mode="reflect"), sigma, mode="reflect"
    )[region]
    if energy.std() <= 0 or grad.std() <= 0:
        return None
    return float(np.corrcoef(energy, grad)[0, 1])
