"""Measure the native speckle of a B-mode image: grain size, level, noise PSD, `physics` fit.

Real scans carry speckle that is spatially correlated (a grain of several pixels) and
log-compressed (additive in the displayed domain). `estimate_speckle(image)` measures it in
the homogeneous parts of the image:

1. **Patch finder.** The image is tiled into `patch` x `patch` squares every `stride` pixels
   (default 32 px every 16 px, at the image's own size). A tile is kept when it is inside the
   scan sector (at most `bad_fraction` = 1 % of its pixels black, <= `black` = 2/255, or
   saturated, >= `white` = 254/255, and a mean of at least `min_mean` = 0.05: this drops the
   background outside the sector and the dark amniotic fluid, which carries no developed
   speckle), when it has texture (its residual std is above `min_std` = 2e-3, twice the std
   of 8-bit rounding: a constant image, a noise-free ramp or a flat quantised background has
   nothing to measure), and when it is homogeneous: its *structure* -- the std of the
   Gaussian-smoothed image (sigma = patch/8) inside the tile, divided by the std of the
   tile's own residual -- is at most `max_structure` (0.6). Speckle alone scores 0.1-0.5
   (smoothing averages the grains away; larger grains score higher); edges and organ borders
   survive the smoothing and score 0.6-1. A pattern finer than about 2/3 of a tile (a
   checkerboard of 20 px squares) cannot be told from a grain by these statistics and is
   measured as texture. Of those tiles the lowest `keep` fraction (the lowest quartile) by
   structure is used, at least `min_patches` (4) of them when there are that many.
2. **Residual.** Each kept tile minus its best-fit plane (a slow depth or lateral trend is
   not speckle). A smooth local mean at the grain scale would take part of the speckle with
   it and narrow the autocorrelation; the plane removes only 3 degrees of freedom, and the
   small bias it leaves (the residual variance is low by `(1/N) sum_l rho(l) A(l)`, `A` the
   autocorrelation of the plane's basis) is corrected analytically.
3. **Autocorrelation.** Averaged over the tiles with FFTs (zero-padded to 2·patch, i.e. the
   linear, not circular, correlation), normalised by the number of overlapping pixel pairs
   per lag, corrected for the plane removal, divided by its value at lag 0: `rho(dy, dx)`.
4. **Grain size.** The full width at half maximum (FWHM) of `rho` along the rows' direction
   (axial: depth, lag `dy`, i.e. down the columns) and along the columns' direction
   (lateral: lag `dx`, along the rows), by linear interpolation of the first crossing of 0.5.
   In pixels at the image's own size. None when `rho` stays above 0.5 over half a patch.
5. **Level.** The pooled std of the residual (corrected as in 2), in the displayed domain:
   exactly the `sigma` of the `physics` and `logcompressed` models.
6. **Noise PSD.** The Fourier transform of the corrected autocovariance under the
   triangular window of the tiles (Bartlett's method), clipped at 0, normalised to mean 1
   (`psd`, 2·patch square, zero frequency at [0, 0]);
   `noise_psd(shape)` places the autocovariance on an image-size grid and returns the PSD in
   the convention of the `bm3d` package (`bm3d.bm3d(z, sigma_psd=PSD)`: mean PSD = H·W·sigma²,
   as its white `sigma` becomes `ones(shape) * H·W * sigma**2`; Mäkinen, Azzari & Foi, IEEE
   TIP 29, 2020).
7. **Physics fit.** The FWHMs are mapped to the `physics` PSF widths `axial_sigma`,
   `lateral_sigma` by a calibration table (`CALIBRATION`, from simulated physics speckle on
   flat images at frequency 0.25 cycles/px, made by `benchmarks/native_speckle.py
   calibrate`; see `fit_physics`), which also corrects the level for the selection and
   plane-fit bias; `sigma = level`, `frequency = 0.25` (the carrier is removed by envelope
   detection and cannot be measured on a B-mode). Widths outside the table are clipped to
   it; below 1 px the axial FWHM saturates (pixel sampling) and axial_sigma is unreliable.

An image without any usable tile returns an estimate with `patches == 0`, every measured
value None and `reason` saying why (no tile inside the sector, no texture: e.g. a constant
image, or no homogeneous tile: e.g. a checkerboard); it never raises for content, only for
bad input (shape, dtype, values outside [0, 1]).

The homogeneous-region approach follows speckle-statistics practice (e.g. Wagner, Smith,
Sandrik & Lopez, IEEE Trans. Sonics Ultrason. 30(3), 1983, on speckle cell size from the
autocovariance; Tuthill, Sperry & Parker, Ultrason. Imaging 10, 1988, on log-compressed
speckle statistics).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from usdenoise.core.errors import UsdenoiseError
from usdenoise.noise.speckle import Physics

__all__ = [
    "CALIBRATION",
    "DEFAULT_FREQUENCY",
    "DatasetSpeckleEstimate",
    "SpeckleEstimate",
    "estimate_dataset",
    "estimate_speckle",
    "fit_physics",
    "measure_patches",
]

#: the `physics` frequency assumed (cycles/px along depth); not measurable after detection
DEFAULT_FREQUENCY = 0.25

#: What `estimate_speckle(..., calibrate=False)` measures on physics speckle with known PSF
#: widths (flat 0.5 image, 256², sigma 0.1, frequency 0.25, several seeds), one row per
#: (axial_sigma, lateral_sigma) on a grid: (axial_sigma, lateral_sigma, axial_fwhm,
#: lateral_fwhm, measured level / sigma). Made by `benchmarks/native_speckle.py calibrate`.
CALIBRATION: tuple[tuple[float, float, float, float, float], ...] = (
    (0.5, 0.75, 1.3703, 1.3625, 0.9908),
    (0.5, 1.0, 1.369, 1.7737, 0.9956),
    (0.5, 1.5, 1.3593, 2.801, 0.9892),
    (0.5, 2.0, 1.3385, 3.5947, 0.9903),
    (0.5, 2.5, 1.3308, 4.5109, 0.9904),
    (0.5, 3.0, 1.3181, 5.3653, 0.9861),
    (0.5, 4.0, 1.3048, 7.1247, 0.9782),
    (0.5, 5.0, 1.3095, 8.872, 0.9834),
    (0.5, 6.0, 1.2736, 10.9723, 0.9865),
    (0.5, 8.0, 1.2657, 14.6924, 0.9788),
    (0.5, 10.0, 1.2577, 18.4595, 0.9909),
    (0.5, 12.0, 1.2484, 22.1151, 0.9771),
    (0.75, 0.75, 1.4096, 1.3569, 0.9978),
    (0.75, 1.0, 1.411, 1.7925, 0.9869),
    (0.75, 1.5, 1.3996, 2.7709, 0.9913),
    (0.75, 2.0, 1.3743, 3.6047, 0.9888),
    (0.75, 2.5, 1.3789, 4.5091, 0.9874),
    (0.75, 3.0, 1.3813, 5.3138, 0.9795),
    (0.75, 4.0, 1.3391, 7.0933, 0.9867),
    (0.75, 5.0, 1.3368, 8.9054, 0.9864),
    (0.75, 6.0, 1.3313, 10.5371, 0.9808),
    (0.75, 8.0, 1.2795, 14.3248, 0.986),
    (0.75, 10.0, 1.2908, 17.9368, 0.9796),
    (0.75, 12.0, 1.2618, 21.7867, 0.9807),
    (1.0, 0.75, 1.6531, 1.3554, 0.9938),
    (1.0, 1.0, 1.654, 1.7772, 0.9899),
    (1.0, 1.5, 1.6264, 2.7463, 0.992),
    (1.0, 2.0, 1.6147, 3.5797, 0.9862),
    (1.0, 2.5, 1.5961, 4.4586, 0.9776),
    (1.0, 3.0, 1.5708, 5.3144, 0.9863),
    (1.0, 4.0, 1.5949, 7.0098, 0.9822),
    (1.0, 5.0, 1.5452, 8.9171, 0.9745),
    (1.0, 6.0, 1.5256, 10.6402, 0.9842),
    (1.0, 8.0, 1.5089, 14.1773, 0.968),
    (1.0, 10.0, 1.4908, 17.7692, 0.9721),
    (1.0, 12.0, 1.4832, 21.4183, 0.9707),
    (1.5, 0.75, 2.7528, 1.3414, 0.9895),
    (1.5, 1.0, 2.703, 1.7501, 0.9827),
    (1.5, 1.5, 2.6728, 2.7162, 0.9815),
    (1.5, 2.0, 2.6467, 3.5069, 0.9809),
    (1.5, 2.5, 2.618, 4.3187, 0.9754),
    (1.5, 3.0, 2.5788, 5.197, 0.9669),
    (1.5, 4.0, 2.5441, 6.829, 0.9733),
    (1.5, 5.0, 2.4421, 8.437, 0.9579),
    (1.5, 6.0, 2.4309, 10.2662, 0.9606),
    (1.5, 8.0, 2.3727, 13.7488, 0.9643),
    (1.5, 10.0, 2.3955, 17.26, 0.9569),
    (1.5, 12.0, 2.2884, 20.5414, 0.9577),
    (2.0, 0.75, 3.576, 1.3245, 0.9871),
    (2.0, 1.0, 3.5706, 1.7348, 0.9842),
    (2.0, 1.5, 3.4925, 2.6779, 0.9821),
    (2.0, 2.0, 3.4949, 3.4642, 0.9785),
    (2.0, 2.5, 3.4151, 4.2684, 0.9622),
    (2.0, 3.0, 3.2911, 5.0746, 0.9599),
    (2.0, 4.0, 3.1889, 6.612, 0.9484),
    (2.0, 5.0, 3.1665, 8.2466, 0.9441),
    (2.0, 6.0, 3.1029, 9.9041, 0.9338),
    (2.0, 8.0, 3.0413, 13.3666, 0.944),
    (2.0, 10.0, 2.9769, 16.7771, 0.9435),
    (2.0, 12.0, 3.0001, 20.5745, 0.9488),
    (2.5, 0.75, 4.4985, 1.3139, 0.985),
    (2.5, 1.0, 4.3989, 1.7299, 0.9793),
    (2.5, 1.5, 4.3675, 2.6569, 0.9693),
    (2.5, 2.0, 4.2259, 3.4052, 0.9581),
    (2.5, 2.5, 4.1391, 4.1453, 0.9608),
    (2.5, 3.0, 4.0632, 5.0064, 0.9669),
    (2.5, 4.0, 3.9207, 6.5615, 0.9393),
    (2.5, 5.0, 3.7769, 7.9325, 0.9367),
    (2.5, 6.0, 3.6843, 9.6905, 0.9347),
    (2.5, 8.0, 3.6432, 13.3202, 0.9263),
    (2.5, 10.0, 3.4763, 16.0633, 0.9224),
    (2.5, 12.0, 3.4797, 20.6058, 0.9293),
    (3.0, 0.75, 5.3556, 1.306, 0.988),
    (3.0, 1.0, 5.2954, 1.7238, 0.9765),
    (3.0, 1.5, 5.1766, 2.6348, 0.9638),
    (3.0, 2.0, 5.044, 3.3177, 0.9643),
    (3.0, 2.5, 4.9568, 3.9907, 0.9489),
    (3.0, 3.0, 4.8395, 4.8338, 0.9481),
    (3.0, 4.0, 4.5858, 6.2386, 0.9431),
    (3.0, 5.0, 4.4457, 7.9366, 0.9396),
    (3.0, 6.0, 4.3534, 9.107, 0.9225),
    (3.0, 8.0, 4.1953, 12.4143, 0.9219),
    (3.0, 10.0, 4.0006, 15.9246, 0.8894),
    (3.0, 12.0, 3.8547, 20.0522, 0.9022),
    (4.0, 0.75, 7.0876, 1.2915, 0.9887),
    (4.0, 1.0, 7.0338, 1.7009, 0.9829),
    (4.0, 1.5, 6.8967, 2.5213, 0.9661),
    (4.0, 2.0, 6.6527, 3.2667, 0.9639),
    (4.0, 2.5, 6.5232, 3.9314, 0.9532),
    (4.0, 3.0, 6.2877, 4.6667, 0.9385),
    (4.0, 4.0, 6.0673, 5.9629, 0.9251),
    (4.0, 5.0, 5.7592, 7.1913, 0.926),
    (4.0, 6.0, 5.5177, 8.4491, 0.8996),
    (4.0, 8.0, 5.1892, 11.3496, 0.9133),
    (4.0, 10.0, 4.8226, 14.9969, 0.8864),
    (4.0, 12.0, 4.6488, 18.2437, 0.8874),
    (5.0, 0.75, 8.868, 1.2869, 0.9798),
    (5.0, 1.0, 8.8382, 1.6642, 0.9732),
    (5.0, 1.5, 8.5844, 2.5261, 0.9794),
    (5.0, 2.0, 8.3267, 3.1912, 0.9496),
    (5.0, 2.5, 7.9771, 3.8581, 0.9388),
    (5.0, 3.0, 7.7625, 4.509, 0.9319),
    (5.0, 4.0, 7.2658, 5.6671, 0.9037),
    (5.0, 5.0, 6.9559, 7.0399, 0.898),
    (5.0, 6.0, 6.4088, 8.156, 0.8963),
    (5.0, 8.0, 5.6695, 10.7123, 0.8887),
    (5.0, 10.0, 5.4268, 15.4388, 0.8883),
    (5.0, 12.0, 5.1502, 17.2979, 0.8323),
    (6.0, 0.75, 10.5101, 1.2624, 0.9739),
    (6.0, 1.0, 10.6507, 1.635, 0.9867),
    (6.0, 1.5, 10.4937, 2.5414, 0.9598),
    (6.0, 2.0, 9.9039, 3.1261, 0.9454),
    (6.0, 2.5, 9.5987, 3.7518, 0.9463),
    (6.0, 3.0, 9.2672, 4.2916, 0.9306),
    (6.0, 4.0, 8.6787, 5.4884, 0.9319),
    (6.0, 5.0, 7.9419, 6.5407, 0.8952),
    (6.0, 6.0, 7.501, 7.6214, 0.9043),
    (6.0, 8.0, 6.2489, 10.542, 0.8518),
    (6.0, 10.0, 5.9891, 12.732, 0.859),
    (6.0, 12.0, 5.5086, 16.741, 0.869),
)


@dataclass(frozen=True)
class SpeckleEstimate:
    """What `estimate_speckle` measured on one image (pixels at the image's own size).

    `patches`: tiles used; `positions`: their top-left corners (row, col); `patch`: the tile
    side; `shape`: the image (H, W). `axial_fwhm` / `lateral_fwhm`: FWHM of the speckle
    autocorrelation along depth (rows' direction, lag dy) and laterally (lag dx), px.
    `level`: std of the speckle in the displayed domain; `mean`: mean intensity of the
    tiles; `speckle_index`: the mean over tiles of std/mean of the raw tile. `axial_sigma`,
    `lateral_sigma`, `sigma`, `frequency`: `physics` model parameters that reproduce it.
    `acf_axial` / `acf_lateral`: rho at lags 0, 1, ... (half a patch). `psd`: the normalised
    noise power spectrum on a (2·patch)² grid (mean 1, zero frequency at [0, 0]); use
    `noise_psd(shape)` for bm3d. With `patches == 0` every measured value is None and
    `reason` says why.
    """

    patches: int
    patch: int
    shape: tuple[int, int]
    positions: tuple[tuple[int, int], ...] = ()
    axial_fwhm: float | None = None
    lateral_fwhm: float | None = None
    level: float | None = None
    residual_std: float | None = None
    mean: float | None = None
    speckle_index: float | None = None
    axial_sigma: float | None = None
    lateral_sigma: float | None = None
    sigma: float | None = None
    frequency: float | None = None
    acf_axial: tuple[float, ...] | None = None
    acf_lateral: tuple[float, ...] | None = None
    reason: str = ""
    psd: torch.Tensor | None = field(default=None, repr=False, compare=False)
    covariance: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def found(self) -> bool:
        """True when homogeneous tiles were found and measured."""
        return self.patches > 0

    def noise_psd(self, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """Noise PSD for `bm3d.bm3d(z, sigma_psd=...)` on an image of `shape` (default: own).

        Convention of the bm3d package: `|FFT|²` of the noise kernel times H·W, so its mean is
        H·W·level² (a white sigma is `ones(shape) * H·W * sigma**2`). None without patches.
        """
        if self.covariance is None or self.level is None:
            return None
        height, width = self.shape if shape is None else (int(shape[0]), int(shape[1]))
        cov = self.covariance.double()
        lags = cov.shape[0] // 2  # cov is [2L+1, 2L+1], zero lag in the centre
        grid = torch.zeros(height, width, dtype=torch.float64)
        dy = torch.arange(-lags, lags + 1) % height
        dx = torch.arange(-lags, lags + 1) % width
        grid.index_put_((dy[:, None].expand_as(cov), dx[None, :].expand_as(cov)), cov,
                        accumulate=True)
        spectrum = torch.fft.fft2(grid).real.clamp_(min=0.0)
        mean = float(spectrum.mean())
        if mean <= 0:
            return None
        spectrum *= self.level**2 / mean
        return (spectrum * (height * width)).numpy()

    def physics_model(self) -> Physics | None:
        """The `physics` noise model with the fitted parameters (None without patches)."""
        if self.sigma is None or self.axial_sigma is None or self.lateral_sigma is None:
            return None
        return Physics(self.sigma, axial_sigma=self.axial_sigma,
                       lateral_sigma=self.lateral_sigma, frequency=self.frequency or 0.25)

    def to_dict(self, *, positions: bool = True) -> dict[str, Any]:
        """JSON-ready summary (no tensors)."""
        out: dict[str, Any] = {
            "patches": self.patches, "patch": self.patch, "shape": list(self.shape),
            "axial_fwhm_px": self.axial_fwhm, "lateral_fwhm_px": self.lateral_fwhm,
            "level": self.level, "mean": self.mean, "speckle_index": self.speckle_index,
            "physics": None if self.sigma is None else {
                "sigma": self.sigma, "axial_sigma": self.axial_sigma,
                "lateral_sigma": self.lateral_sigma, "frequency": self.frequency,
            },
            "acf_axial": None if self.acf_axial is None else list(self.acf_axial),
            "acf_lateral": None if self.acf_lateral is None else list(self.acf_lateral),
            "reason": self.reason,
        }
        if positions:
            out["positions"] = [list(p) for p in self.positions]
        return out


# ---------------------------------------------------------------------------------------------
# input


def _as_image(image: object) -> torch.Tensor:
    """[1,H,W] or [H,W] tensor (or array) with values in [0, 1] -> float64 [H, W]."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise UsdenoiseError(
            "estimate_speckle: expected a [1,H,W] or [H,W] image tensor, got "
            f"{type(image).__name__}"
        )
    shape = tuple(image.shape)
    if image.ndim == 3 and shape[0] == 1:
        image = image[0]
    if image.ndim != 2 or min(image.shape) < 1:
        raise UsdenoiseError(f"estimate_speckle: expected a [1,H,W] or [H,W] image, got {shape}")
    if not (image.dtype.is_floating_point or image.dtype in (torch.uint8,)):
        raise UsdenoiseError(f"estimate_speckle: expected a float image, got {image.dtype}")
    x = image.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise UsdenoiseError("estimate_speckle: the image has NaN or infinite values")
    if image.dtype == torch.uint8:
        x = x / 255.0
    elif float(x.min()) < -1e-6 or float(x.max()) > 1 + 1e-6:
        raise UsdenoiseError(
            f"estimate_speckle: values must be in [0, 1], got {float(x.min()):g} to "
            f"{float(x.max()):g}"
        )
    return x


def _check_options(patch: int, stride: int, keep: float, max_structure: float) -> None:
    if not isinstance(patch, int) or isinstance(patch, bool) or patch < 8:
        raise UsdenoiseError(f"estimate_speckle: patch must be a whole number >= 8, got {patch!r}")
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise UsdenoiseError(
            f"estimate_speckle: stride must be a whole number >= 1, got {stride!r}"
        )
    if not (0 < keep <= 1):
        raise UsdenoiseError(f"estimate_speckle: keep must be in (0, 1], got {keep!r}")
    if not (max_structure > 0):
        raise UsdenoiseError(
            f"estimate_speckle: max_structure must be positive, got {max_structure!r}"
        )


# ---------------------------------------------------------------------------------------------
# patch geometry


def _plane_basis(patch: int) -> torch.Tensor:
    """Orthonormal basis [3, p, p] of the planes on a p x p tile (1, y, x)."""
    c = torch.arange(patch, dtype=torch.float64) - (patch - 1) / 2.0
    ones = torch.ones(patch, patch, dtype=torch.float64)
    basis = torch.stack([ones, c[:, None].expand(patch, patch), c[None, :].expand(patch, patch)])
    return basis / basis.flatten(1).norm(dim=1)[:, None, None]


def _remove_plane(tiles: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """tiles [n, p, p] minus their least-squares plane."""
    coef = torch.einsum("nij,kij->nk", tiles, basis)
    return tiles - torch.einsum("nk,kij->nij", coef, basis)


def _tiles(x: torch.Tensor, patch: int, stride: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """All patch x patch tiles every `stride` px (the last row/column of tiles flush with the
    border): ([n, p, p], positions)."""
    height, width = x.shape

    def starts(n: int) -> list[int]:
        out = list(range(0, n - patch + 1, stride))
        if out and out[-1] != n - patch:
            out.append(n - patch)
        return out

    rows, cols = starts(height), starts(width)
    positions = [(r, c) for r in rows for c in cols]
    if not positions:
        return x.new_zeros(0, patch, patch), []
    tiles = _gather(x, positions, patch)
    return tiles, positions


def _gather(x: torch.Tensor, positions, patch: int) -> torch.Tensor:
    """The patch x patch tiles of x [H, W] at top-left corners `positions`: [n, p, p]."""
    rows = torch.tensor([p[0] for p in positions])[:, None, None]
    cols = torch.tensor([p[1] for p in positions])[:, None, None]
    offsets = torch.arange(patch)
    return x[rows + offsets[None, :, None], cols + offsets[None, None, :]]


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = x[None, None]
    y = F.pad(y, (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return y[0, 0]


# ---------------------------------------------------------------------------------------------
# statistics of the chosen tiles


def _lag_sums(tiles: torch.Tensor) -> torch.Tensor:
    """Sum over tiles of the linear autocorrelation sums, lags -(p-1)..p-1: [2p-1, 2p-1]."""
    p = tiles.shape[-1]
    spectrum = torch.fft.rfft2(tiles, s=(2 * p, 2 * p))
    acf = torch.fft.irfft2((spectrum.abs() ** 2).sum(0), s=(2 * p, 2 * p))
    return torch.fft.fftshift(acf)[1:, 1:]  # centre (zero lag) at [p-1, p-1]


def _overlap(p: int) -> torch.Tensor:
    """Number of pixel pairs per lag in a p x p tile, [2p-1, 2p-1]."""
    n = p - torch.arange(-(p - 1), p, dtype=torch.float64).abs()
    return n[:, None] * n[None, :]


def _fwhm(profile: torch.Tensor) -> float | None:
    """Full width at half maximum of a 1-D correlation profile rho[0..L] (rho[0] = 1)."""
    below = (profile < 0.5).nonzero()
    if below.numel() == 0:
        return None
    k = int(below[0])
    a, b = float(profile[k - 1]), float(profile[k])
    return 2.0 * ((k - 1) + (a - 0.5) / (a - b))


def measure_patches(
    image: object,
    positions: Iterable[tuple[int, int]],
    *,
    patch: int = 32,
    calibrate: bool = True,
) -> SpeckleEstimate:
    """Speckle statistics of `image` (any real values, [H,W] or [1,H,W]) in given tiles.

    Steps 2-7 of the module docstring on the tiles whose top-left corners are `positions`
    (e.g. those `estimate_speckle` found on the displayed image, measured again on a
    transformed one, such as BM3D's log domain). No range check on the values.
    """
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor) or image.ndim not in (2, 3) or (
        image.ndim == 3 and image.shape[0] != 1
    ):
        raise UsdenoiseError("measure_patches: expected a [1,H,W] or [H,W] image tensor")
    x = image.reshape(image.shape[-2:]).detach().to("cpu", torch.float64)
    height, width = x.shape
    positions = tuple((int(r), int(c)) for r, c in positions)
    for r, c in positions:
        if not (0 <= r <= height - patch and 0 <= c <= width - patch):
            raise UsdenoiseError(
                f"measure_patches: tile at {(r, c)} of side {patch} leaves the {height}x{width} "
                "image"
            )
    empty = SpeckleEstimate(0, patch, (height, width), reason="no tiles given")
    if not positions:
        return empty
    tiles = _gather(x, positions, patch)
    return _statistics(tiles, positions, (height, width), calibrate=calibrate)


def _statistics(
    tiles: torch.Tensor,
    positions: tuple[tuple[int, int], ...],
    shape: tuple[int, int],
    *,
    calibrate: bool = True,
) -> SpeckleEstimate:
    n, p = tiles.shape[0], tiles.shape[-1]
    basis = _plane_basis(p)
    residual = _remove_plane(tiles, basis)
    sums = _lag_sums(residual)
    overlap = _overlap(p)
    cov_u = sums / (n * overlap)  # unbiased (per overlapping pair) autocovariance
    var0 = float(cov_u[p - 1, p - 1])
    means = tiles.flatten(1).mean(1)
    stds = tiles.flatten(1).std(1)
    ok = means > 0
    index = float((stds[ok] / means[ok]).mean()) if bool(ok.any()) else None
    base: dict[str, Any] = dict(patches=n, patch=p, shape=shape, positions=positions,
                                mean=float(means.mean()), speckle_index=index)
    if var0 <= 0:
        return SpeckleEstimate(**base, level=0.0, residual_std=0.0, sigma=0.0,
                               reason="no speckle in the tiles")
    # plane-removal bias: E[residual var] = var * (1 - c), c = (1/N) sum_l rho(l) A(l)
    basis_acf = _lag_sums(basis)  # sum_k autocorrelation of the unit-norm basis, A(l)
    rho_meas = cov_u / var0
    rho = rho_meas
    c = 0.0
    for _ in range(3):
        c = float((rho * basis_acf).sum()) / (p * p)
        c = min(max(c, 0.0), 0.5)
        rho = rho_meas * (1.0 - c) + c
    level = math.sqrt(var0 / (1.0 - c))
    half = p // 2
    centre = p - 1
    down, up = slice(centre, centre + half + 1), slice(centre - half, centre + 1)
    axial = 0.5 * (rho[down, centre] + rho[up, centre].flip(0))
    lateral = 0.5 * (rho[centre, down] + rho[centre, up].flip(0))
    axial_fwhm, lateral_fwhm = _fwhm(axial), _fwhm(lateral)
    # Bartlett: the corrected autocovariance under the triangular (overlap) window; the
    # plane-removal offset c put back, so the lowest frequencies keep their power
    cov_b = (level * level) * rho * overlap / (p * p)
    spectrum = torch.fft.fft2(torch.fft.ifftshift(F.pad(cov_b, (1, 0, 1, 0)))).real.clamp_(min=0)
    psd = spectrum / spectrum.mean()
    axial_sigma = lateral_sigma = None
    ratio = 1.0
    if calibrate and axial_fwhm is not None and lateral_fwhm is not None:
        axial_sigma, lateral_sigma, ratio = fit_physics(axial_fwhm, lateral_fwhm)
    return SpeckleEstimate(
        **base,
        axial_fwhm=axial_fwhm,
        lateral_fwhm=lateral_fwhm,
        level=level / ratio,
        residual_std=level,
        axial_sigma=axial_sigma,
        lateral_sigma=lateral_sigma,
        sigma=level / ratio,
        frequency=DEFAULT_FREQUENCY,
        acf_axial=tuple(round(float(v), 4) for v in axial),
        acf_lateral=tuple(round(float(v), 4) for v in lateral),
        psd=psd.float(),
        covariance=cov_b.float(),
    )


def _calibration_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if not CALIBRATION:
        return None
    rows = np.asarray(CALIBRATION, dtype=np.float64)
    axial = np.unique(rows[:, 0])
    lateral = np.unique(rows[:, 1])
    grid = np.full((axial.size, lateral.size, 3), np.nan)
    for a, lat, fa, fl, ratio in rows:
        grid[np.searchsorted(axial, a), np.searchsorted(lateral, lat)] = (fa, fl, ratio)
    return axial, lateral, grid


def _bilinear(axial, lateral, grid, a: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """grid[i, j, :] at fractional positions (a, lat) on the (axial, lateral) axes."""
    ia = np.clip(np.searchsorted(axial, a) - 1, 0, axial.size - 2)
    il = np.clip(np.searchsorted(lateral, lat) - 1, 0, lateral.size - 2)
    ta = np.clip((a - axial[ia]) / (axial[ia + 1] - axial[ia]), 0, 1)[..., None]
    tl = np.clip((lat - lateral[il]) / (lateral[il + 1] - lateral[il]), 0, 1)[..., None]
    return ((1 - ta) * (1 - tl) * grid[ia, il] + ta * (1 - tl) * grid[ia + 1, il]
            + (1 - ta) * tl * grid[ia, il + 1] + ta * tl * grid[ia + 1, il + 1])


def fit_physics(axial_fwhm: float, lateral_fwhm: float) -> tuple[float, float, float]:
    """Measured FWHMs (px) -> (`axial_sigma`, `lateral_sigma`, level ratio) by `CALIBRATION`.

    The table holds, for physics speckle with known PSF widths, the FWHMs this module measures
    and the ratio measured level / true sigma (the lowest-quartile selection and the plane
    removal leave the level 2-15 % low for large grains). The fit is the table point, on a
    fine bilinear interpolation of it, with the smallest squared log error of both widths;
    widths outside the table are clipped to its range. Without a table: the Gaussian rule
    sigma = FWHM / (2·sqrt(2 ln 2)), ratio 1.
    """
    arrays = _calibration_arrays()
    if arrays is None:
        k = 2.0 * math.sqrt(2.0 * math.log(2.0))
        return axial_fwhm / k, lateral_fwhm / k, 1.0
    axial, lateral, grid = arrays
    fa = np.exp(np.linspace(np.log(axial[0]), np.log(axial[-1]), 160))
    fl = np.exp(np.linspace(np.log(lateral[0]), np.log(lateral[-1]), 160))
    a, lat = np.meshgrid(fa, fl, indexing="ij")
    values = _bilinear(axial, lateral, grid, a, lat)
    error = ((np.log(values[..., 0]) - math.log(axial_fwhm)) ** 2
             + (np.log(values[..., 1]) - math.log(lateral_fwhm)) ** 2)
    i, j = np.unravel_index(int(np.argmin(error)), error.shape)
    return float(fa[i]), float(fl[j]), float(values[i, j, 2])


# ---------------------------------------------------------------------------------------------
# the patch finder


def estimate_speckle(
    image: object,
    *,
    patch: int = 32,
    stride: int | None = None,
    keep: float = 0.25,
    min_patches: int = 4,
    max_structure: float = 0.6,
    black: float = 2.0 / 255.0,
    white: float = 254.0 / 255.0,
    bad_fraction: float = 0.01,
    min_mean: float = 0.05,
    min_std: float = 2e-3,
    calibrate: bool = True,
) -> SpeckleEstimate:
    """Measure the speckle of one B-mode image (Tensor[1,H,W] or [H,W], values in [0, 1]).

    Finds homogeneous tiles (module docstring, step 1) and measures grain size, level, PSD and
    the `physics` parameters in them (steps 2-7). Returns a `SpeckleEstimate`; with no usable
    tile, `patches == 0`, None values and a `reason`. Bad input raises UsdenoiseError.
    """
    x = _as_image(image)
    stride = patch // 2 if stride is None else stride
    _check_options(patch, stride, keep, max_structure)
    shape = (int(x.shape[0]), int(x.shape[1]))
    tiles, positions = _tiles(x, patch, stride)
    if not positions:
        return SpeckleEstimate(0, patch, shape, reason=f"image smaller than one {patch}px tile")
    bad = ((tiles <= black) | (tiles >= white)).flatten(1).double().mean(1) > bad_fraction
    basis = _plane_basis(patch)
    res_std = _remove_plane(tiles, basis).flatten(1).std(1)
    smooth, _ = _tiles(_gaussian_blur(x, patch / 8.0), patch, stride)
    # mean removal only: a plane would absorb most of a step edge across the tile
    structure = smooth.flatten(1).std(1) / res_std.clamp(min=1e-12)
    inside = ~bad & (tiles.flatten(1).mean(1) >= min_mean)
    textured = inside & (res_std > min_std)
    candidate = textured & (structure <= max_structure)
    if not bool(inside.any()):
        return SpeckleEstimate(0, patch, shape, reason="no tile inside the scan sector "
                               "(every tile is dark or has black or saturated pixels)")
    if not bool(textured.any()):
        return SpeckleEstimate(0, patch, shape, reason="no texture: the image is constant or "
                               "noise-free where it is inside the sector")
    if not bool(candidate.any()):
        return SpeckleEstimate(0, patch, shape, reason="no homogeneous tile: every textured "
                               f"tile has structure above {max_structure:g}")
    index = candidate.nonzero().flatten()
    order = index[torch.argsort(structure[index], stable=True)]
    count = max(math.ceil(keep * order.numel()), min(min_patches, order.numel()))
    chosen = order[:count].sort().values
    chosen_positions = tuple(positions[i] for i in chosen.tolist())
    return _statistics(tiles[chosen], chosen_positions, shape, calibrate=calibrate)


# ---------------------------------------------------------------------------------------------
# data sets


@dataclass(frozen=True)
class DatasetSpeckleEstimate:
    """Median over the images of a data set (images without patches are left out)."""

    images: int
    measured: int
    patches: int
    axial_fwhm: float | None
    lateral_fwhm: float | None
    level: float | None
    speckle_index: float | None
    axial_sigma: float | None
    lateral_sigma: float | None
    sigma: float | None
    frequency: float | None
    estimates: tuple[SpeckleEstimate, ...] = field(default=(), repr=False, compare=False)
    ids: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self, *, per_image: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "images": self.images, "measured": self.measured, "patches": self.patches,
            "axial_fwhm_px": self.axial_fwhm, "lateral_fwhm_px": self.lateral_fwhm,
            "level": self.level, "speckle_index": self.speckle_index,
            "physics": None if self.sigma is None else {
                "sigma": self.sigma, "axial_sigma": self.axial_sigma,
                "lateral_sigma": self.lateral_sigma, "frequency": self.frequency,
            },
            "statistic": "median over the images with patches",
        }
        if per_image:
            out["per_image"] = [
                {"id": i, **e.to_dict(positions=False)}
                for i, e in zip(self.ids, self.estimates, strict=True)
            ]
        return out


def _median(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(statistics.median(kept)) if kept else None


def aggregate(
    estimates: Iterable[SpeckleEstimate], ids: Iterable[str] = ()
) -> DatasetSpeckleEstimate:
    """Median of per-image estimates (those with `patches == 0` are left out)."""
    estimates = tuple(estimates)
    ids = tuple(ids) or tuple(str(i) for i in range(len(estimates)))
    found = [e for e in estimates if e.found]

    def med(name: str) -> float | None:
        return _median([getattr(e, name) for e in found])

    return DatasetSpeckleEstimate(
        images=len(estimates), measured=len(found), patches=sum(e.patches for e in estimates),
        axial_fwhm=med("axial_fwhm"), lateral_fwhm=med("lateral_fwhm"), level=med("level"),
        speckle_index=med("speckle_index"), axial_sigma=med("axial_sigma"),
        lateral_sigma=med("lateral_sigma"), sigma=med("sigma"),
        frequency=DEFAULT_FREQUENCY if found else None, estimates=estimates, ids=ids,
    )


def estimate_dataset(dataset: Any, *, limit: int | None = None, **options: Any
                     ) -> DatasetSpeckleEstimate:
    """`estimate_speckle` on every image of a data set (samples with an "image" key), then
    the median of each value over the images that had homogeneous patches.

    `limit` takes only the first N images; `options` go to `estimate_speckle`.
    """
    if limit is not None and limit < 1:
        raise UsdenoiseError(f"estimate_dataset: limit must be at least 1, got {limit!r}")
    count = len(dataset) if limit is None else min(limit, len(dataset))
    estimates, ids = [], []
    for i in range(count):
        sample = dataset[i]
        estimates.append(estimate_speckle(sample["image"], **options))
        ids.append(str(sample.get("id", i)))
    return aggregate(estimates, ids)
