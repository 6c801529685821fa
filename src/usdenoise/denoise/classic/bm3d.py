"""BM3D (Dabov et al. 2007) through the `bm3d` package, with a log route for speckle.

Speckle is multiplicative, y = x * n with E[n] = 1, so its standard deviation grows with
the signal. The default `route="log"` stabilises the variance first (homomorphic
filtering):

    z = log(y + offset)               noise becomes additive with a constant sigma
    z_hat = BM3D(z, sigma)            sigma given, or estimated on z
    x_hat = exp(z_hat) - offset       back to intensities, then bias correction

Because E[log n] < 0, exp(z_hat) underestimates x; `bias_correction="mean"` rescales the
output to the mean of the input (exact for any unit-mean multiplicative noise),
`"lognormal"` multiplies by exp(sigma^2 / 2) (exact for log-normal noise), `"off"` skips it.
`route="plain"` runs BM3D on the intensities (additive-noise assumption).

sigma, when not given, is estimated per image as the median absolute deviation of the
finest diagonal wavelet band divided by 0.6745 (`skimage.restoration.estimate_sigma`).
The default `np` profile ("normal profile") takes a scalar sigma (white noise); `vn` and
`high` do too; `refilter` raises a shape error with a scalar sigma in bm3d 4.0.3, so it is
not offered.
Images are processed one by one; the package's own time dominates (see
benchmarks/classic_speed_nonlocal.py).

The `bm3d` package is free for non-commercial use only; it is the optional extra
`usdenoise[bm3d]` and is imported only when this filter runs.
"""

from __future__ import annotations

import numpy as np
import torch

from usdenoise.core.errors import optional_import
from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser

#: added before the log so that black pixels stay finite (one 8-bit grey level)
LOG_OFFSET = 1.0 / 255.0


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Noise standard deviation of a 2-D image: MAD of the finest (diagonal) wavelet band.

    As `skimage.restoration.estimate_sigma` (Donoho's median / 0.6745 of the db2 `dd` band),
    except that coefficients that are zero are left out: ultrasound images have large black
    areas outside the sector, which carry no noise and otherwise pull the median towards 0
    (on HC18 with Rayleigh 0.5 speckle the plain estimate is 0.20 against a true 0.33). A
    constant image has no measurable noise: 0.
    """
    import pywt

    detail = np.abs(pywt.dwtn(np.asarray(image, dtype=np.float64), "db2")["dd"])
    scale = float(detail.max(initial=0.0))
    detail = detail[detail > 1e-9 * max(scale, 1.0)]
    if detail.size == 0:
        return 0.0
    return float(np.median(detail) / 0.6744897501960817)


class BM3D(Denoiser):
    name = "bm3d"
    summary = "BM3D (bm3d package; log route for multiplicative speckle; optional extra)"
    params = (
        Param(
            "route",
            "log",
            "log: variance-stabilising log transform, BM3D, exp back with bias correction; "
            "plain: BM3D on the intensities",
            kind=str,
            choices=("log", "plain"),
        ),
        Param(
            "sigma",
            None,
            "noise standard deviation in the domain BM3D works in (log domain for "
            "route=log, intensities in [0, 1] for route=plain); None estimates it per image",
            kind=float,
            low=0.0,
            high=5.0,
            allow_none=True,
        ),
        Param(
            "bias_correction",
            "mean",
            "route=log only: mean (match the input mean), lognormal (times exp(sigma^2/2)) or off",
            kind=str,
            choices=("mean", "lognormal", "off"),
        ),
        Param(
            "profile",
            "np",
            "bm3d package profile (these take a scalar sigma; 'refilter' fails with one in "
            "bm3d 4.0.3 and is not offered)",
            kind=str,
            choices=("np", "vn", "high"),
        ),
    )
    min_size = 8

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        bm3d = optional_import("bm3d", extra="bm3d")
        images = x.detach().cpu().double().numpy()[:, 0]
        out = np.stack([self._one(bm3d, image) for image in images])
        return torch.from_numpy(out).to(x.device, torch.float32).unsqueeze(1)

    def _one(self, bm3d, y: np.ndarray) -> np.ndarray:
        if self.route == "plain":
            sigma = estimate_noise_sigma(y) if self.sigma is None else self.sigma
            return self._run(bm3d, y, sigma)
        z = np.log(y + LOG_OFFSET)
        sigma = estimate_noise_sigma(z) if self.sigma is None else self.sigma
        est = np.exp(self._run(bm3d, z, sigma))
        if self.bias_correction == "lognormal":
            est *= np.exp(0.5 * sigma * sigma)
        est -= LOG_OFFSET
        if self.bias_correction == "mean":
            mean = est.mean()
            if mean > 0:
                est *= y.mean() / mean
        return est

    def _run(self, bm3d, z: np.ndarray, sigma: float) -> np.ndarray:
        if sigma <= 0.0:
            return z  # nothing to remove (a constant image, or sigma=0 given)
        return np.asarray(bm3d.bm3d(z, sigma, profile=self.profile), dtype=np.float64)
