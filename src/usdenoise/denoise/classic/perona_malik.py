"""Perona-Malik anisotropic diffusion (Perona & Malik, IEEE PAMI 12(7), 1990).

    I <- I + dt * sum_{k in N,S,W,E} g(|d_k|) d_k

with the differences d_k to the four neighbours and one of the paper's two conduction
functions: "exponential" g(d) = exp(-(d / kappa)^2) (favours high-contrast edges) or
"rational" g(d) = 1 / (1 + (d / kappa)^2) (favours wide regions). kappa is in image units
(images are in [0, 1]). Explicit scheme, stable for dt <= 1/4 since g lies in (0, 1];
larger steps raise UsdenoiseError. Reflect padding.
"""

from __future__ import annotations

import torch

from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.classic._local import check_time_step, neighbour_differences


class PeronaMalik(Denoiser):
    name = "perona_malik"
    summary = "Perona-Malik anisotropic diffusion"
    params = (
        Param("iterations", 20, "number of diffusion steps", kind=int, low=1, high=100_000),
        Param("kappa", 0.2, "edge threshold in intensity units (image in [0, 1])",
              low=1e-4, high=10.0),
        Param("time_step", 0.2, "time step dt per iteration (<= 0.25 for stability)"),
        Param("conduction", "exponential", "conduction function g",
              kind=str, choices=("exponential", "rational")),
    )
    # set from `params` by Denoiser.__init__
    iterations: int
    kappa: float
    time_step: float
    conduction: str
    min_size = 3

    def check_config(self) -> None:
        check_time_step(self.name, self.time_step)

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        inv_k2 = 1.0 / (self.kappa * self.kappa)
        # one image at a time: the working set stays in cache
        for i in range(x.shape[0]):
            img = x[i : i + 1].clone()
            for _ in range(self.iterations):
                flux = torch.zeros_like(img)
                for d in neighbour_differences(img):
                    s = d * d * inv_k2
                    if self.conduction == "exponential":
                        g = torch.exp(s.neg_())
                    else:
                        g = s.add_(1.0).reciprocal_()
                    flux.addcmul_(g, d)
                img.add_(flux, alpha=self.time_step)
            out[i] = img[0]
        return out
