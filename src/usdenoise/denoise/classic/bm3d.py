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

The noise, when `sigma` is not given, is estimated per image. `noise="psd"` (default):
native speckle is spatially correlated (a grain of several pixels), so
`usdenoise.noise.estimate.estimate_speckle` finds the homogeneous patches of the displayed
image and the residual power spectrum of those patches in the domain BM3D works in (the log
image for route=log) is passed as `sigma_psd` (correlated-noise BM3D, Mäkinen, Azzari & Foi,
IEEE TIP 29, 2020). Without homogeneous patches it falls back to the white estimate with a
warning. `noise="white"` (the old behaviour): a scalar sigma, the median absolute deviation
of the finest diagonal wavelet band divided by 0.6745 (`skimage.restoration.estimate_sigma`).
An estimated level below `MIN_LEVEL` (1e-3) warns and returns the input unchanged.
The `np`, `vn` and `high` profiles take a scalar sigma or a PSD; `refilter` raises a shape
error with a scalar sigma in bm3d 4.0.3, so it is not offered.
Images are processed one by one; the package's own time dominates (see
benchmarks/classic_speed_nonlocal.py).

The `bm3d` package is free for non-commercial use only; it is the optional extra
`usdenoise[bm3d]` and is imported only when this filter runs.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

from usdenoise.core.errors import optional_import
from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.noise.estimate import SpeckleEstimate, estimate_speckle, measure_patches

#: added before the log so that black pixels stay finite (one 8-bit grey level)
LOG_OFFSET = 1.0 / 255.0
#: an estimated noise level below this is "no noise": the filter warns and returns its input
MIN_LEVEL = 1e-3


def speckle_estimate(method: str, image: np.ndarray) -> SpeckleEstimate | None:
    """`estimate_speckle` of a displayed image in [0, 1]; None (with a warning naming
    `method`) when it finds no homogeneous patches."""
    estimate = estimate_speckle(np.clip(image, 0.0, 1.0))
    if not estimate.found:
        warnings.warn(
            f"{method}: the speckle estimate found no homogeneous patches ({estimate.reason}); "
            "using the white wavelet noise estimate instead",
            stacklevel=3,
        )
        return None
    return estimate


def warn_no_noise(method: str, what: str, level: float) -> None:
    """Warn that an estimated level is too small to filter (the input comes back)."""
    warnings.warn(
        f"{method}: the {what} noise level {level:.3g} is below {MIN_LEVEL:g}; "
        "returning the input unchanged",
        stacklevel=3,
    )


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
            "route=log, intensities in [0, 1] for route=plain); None estimates the noise per "
            "image (see noise)",
            kind=float,
            low=0.0,
            high=5.0,
            allow_none=True,
        ),
        Param(
            "noise",
            "psd",
            "when sigma is None: psd (correlated-noise PSD from the homogeneous patches, "
            "usdenoise.noise.estimate) or white (scalar wavelet MAD sigma, the old default)",
            kind=str,
            choices=("psd", "white"),
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
    # set from `params` by Denoiser.__init__
    route: str
    sigma: float | None
    noise: str
    bias_correction: str
    profile: str
    min_size = 8

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        bm3d = optional_import("bm3d", extra="bm3d")
        images = x.detach().cpu().double().numpy()[:, 0]
        out = np.stack([self._one(bm3d, image) for image in images])
        return torch.from_numpy(out).to(x.device, torch.float32).unsqueeze(1)

    def _one(self, bm3d, y: np.ndarray) -> np.ndarray:
        z = y if self.route == "plain" else np.log(y + LOG_OFFSET)
        noise, sigma = self._noise(y, z)
        if noise is None:
            return y
        if self.route == "plain":
            return self._run(bm3d, z, noise)
        est = np.exp(self._run(bm3d, z, noise))
        if self.bias_correction == "lognormal":
            est *= np.exp(0.5 * sigma * sigma)
        est -= LOG_OFFSET
        if self.bias_correction == "mean":
            mean = est.mean()
            if mean > 0:
                est *= y.mean() / mean
        return est

    def _noise(self, y: np.ndarray, z: np.ndarray) -> tuple[float | np.ndarray | None, float]:
        """(sigma or PSD for bm3d, or None for "return the input"; the level in z's domain)."""
        if self.sigma is not None:
            return self.sigma, self.sigma
        if self.noise == "psd":
            estimate = speckle_estimate(self.name, y)
            if estimate is not None:
                if self.route == "log":
                    estimate = measure_patches(z, estimate.positions, patch=estimate.patch)
                level = float(estimate.level or 0.0)
                psd = estimate.noise_psd(z.shape)
                if level < MIN_LEVEL or psd is None:
                    warn_no_noise(self.name, "speckle-estimate", level)
                    return None, 0.0
                return psd, level
        sigma = estimate_noise_sigma(z)
        if sigma < MIN_LEVEL:
            warn_no_noise(self.name, "wavelet-estimate", sigma)
            return None, 0.0
        return sigma, sigma

    def _run(self, bm3d, z: np.ndarray, noise: float | np.ndarray) -> np.ndarray:
        if np.ndim(noise) == 0:
            if float(noise) <= 0.0:
                return z  # nothing to remove (sigma=0 given)
            return np.asarray(bm3d.bm3d(z, noise, profile=self.profile), dtype=np.float64)
        with _numpy_trapz():
            return np.asarray(bm3d.bm3d(z, noise, profile=self.profile), dtype=np.float64)


@contextlib.contextmanager
def _numpy_trapz():
    """bm4d 4.2 (used by bm3d 4.0.3 for a PSD) calls `np.trapz`, which NumPy 2.4 removed;
    alias it to `np.trapezoid` (same function) for the call only."""
    if hasattr(np, "trapz"):
        yield
        return
    setattr(np, "trapz", np.trapezoid)  # noqa: B010 - NumPy's stubs (rightly) lack trapz
    try:
        yield
    finally:
        delattr(np, "trapz")
