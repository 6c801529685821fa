"""Wavelet shrinkage with BayesShrink (Chang, Yu & Vetterli 2000) through
`skimage.restoration.denoise_wavelet`.

The image is decomposed with `wavelet` over `levels` levels; each detail sub-band is
thresholded at sigma^2 / sigma_x (its own Bayes-optimal threshold for a generalised
Gaussian prior), with sigma the noise standard deviation (estimated per image from the
finest diagonal band when not given). Intensities in [0, 1], additive-noise model.
"""

from __future__ import annotations

import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser

WAVELETS = ("db1", "db2", "db4", "db8", "sym4", "sym8", "coif1", "bior4.4")


class WaveletBayesShrink(Denoiser):
    name = "wavelet"
    summary = "wavelet shrinkage, BayesShrink (scikit-image)"
    params = (
        Param("wavelet", "db1", "PyWavelets wavelet name", kind=str, choices=WAVELETS),
        Param("mode", "soft", "thresholding", kind=str, choices=("soft", "hard")),
        Param(
            "levels",
            None,
            "decomposition levels; None lets scikit-image choose (3 fewer than the maximum)",
            kind=int,
            low=1,
            high=10,
            allow_none=True,
        ),
        Param(
            "sigma",
            None,
            "noise standard deviation on the [0, 1] scale; None estimates it per image",
            kind=float,
            low=0.0,
            high=1.0,
            allow_none=True,
        ),
    )
    # set from `params` by Denoiser.__init__
    wavelet: str
    mode: str
    levels: int | None
    sigma: float | None
    min_size = 4

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        images = x.detach().cpu().double().numpy()[:, 0]
        out = np.stack([self._one(image) for image in images])
        return torch.from_numpy(out).to(x.device, torch.float32).unsqueeze(1)

    def _one(self, image: np.ndarray) -> np.ndarray:
        import pywt
        from skimage.restoration import denoise_wavelet

        if self.sigma is None and not np.any(pywt.dwt2(image, self.wavelet)[1][2]):
            # no noise to estimate (the finest diagonal band is zero, e.g. a constant
            # image); scikit-image would return NaN from its empty-median estimate
            return image
        if self.levels is not None:
            most = pywt.dwtn_max_level(image.shape, self.wavelet)
            if self.levels > most:
                raise UsdenoiseError(
                    f"{self.name}: parameter levels={self.levels} is too many for a "
                    f"{image.shape[0]}x{image.shape[1]} image with {self.wavelet} (at most {most})"
                )
        return denoise_wavelet(
            image,
            sigma=self.sigma,
            wavelet=self.wavelet,
            mode=self.mode,
            wavelet_levels=self.levels,
            method="BayesShrink",
            rescale_sigma=True,
        )
