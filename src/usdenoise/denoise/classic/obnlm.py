"""Optimized Bayesian non-local means for speckle (OBNLM; Coupé, Hellier, Kervrann &
Barillot, IEEE TIP 18(10) 2009), written here and vectorised in torch.

Speckle model u = v + v^gamma * eta (gamma = 0.5 for log-compressed ultrasound). The
Bayesian derivation replaces the Euclidean patch distance of NL-means by the Pearson
distance

    d_P(B_i, B_j) = mean_p (u(B_i)_p - u(B_j)_p)^2 / u(B_j)_p^(2 gamma)

(averaged over the block's pixels here, so h does not depend on the block size), with
weights w = exp(-d_P / h^2). "Optimized" blockwise scheme: blocks B_i of side
2*block_radius+1 are centred every `step` pixels; each block is restored as the weighted
mean of all blocks centred within `search_radius` of it (the block's own weight is the
largest of the others, as in Coupé et al.); blocks whose mean ratio falls outside
[mean_ratio, 1/mean_ratio] or variance ratio outside [var_ratio, 1/var_ratio] get weight 0
(pre-selection); each pixel is the average of the restored blocks that cover it.

Vectorisation: for each search offset o the per-pixel Pearson term is computed over the
whole image at once, the block distances at the block centres are one strided
`avg_pool2d`, and the aggregation sum_c sum_o w_o(c) u(x + o) over the blocks c covering x
is a `conv_transpose2d` of the normalised weights with a box kernel, so the work is
O(offsets x pixels) tensor operations with no Python loop over pixels or blocks.

Intensities are scaled to [0, 255] inside (the scale of the paper, where h is quoted).
`h=None` estimates it from the image: sigma is the noise level of the model, the std of the
variance-stabilised image u^(1 - gamma) / (1 - gamma) (log u for gamma = 1) measured with
`noise="speckle"` (default) in the homogeneous patches that
`usdenoise.noise.estimate.estimate_speckle` finds on the displayed image (correlated grain
included; falls back to the wavelet estimate with a warning without such patches), or with
`noise="wavelet"` (the old default) as the MAD of its finest wavelet band; h = h_factor *
sqrt(2) * sigma (the expected Pearson distance between two noisy copies of one block is
2 sigma^2). An estimated sigma below 1e-3 (on the 0-255 scale) warns and returns the input.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.classic.bm3d import (
    MIN_LEVEL,
    estimate_noise_sigma,
    speckle_estimate,
    warn_no_noise,
)
from usdenoise.noise.estimate import measure_patches

SCALE = 255.0
_EPS = 1e-6


def stabilise(u: np.ndarray, gamma: float) -> np.ndarray:
    """Variance-stabilising transform for Var(u) proportional to u^(2 gamma)."""
    if gamma >= 1.0 - 1e-9:
        return np.log(u + 1.0)
    return np.power(np.maximum(u, 0.0), 1.0 - gamma) / (1.0 - gamma)


def estimate_model_sigma(u: np.ndarray, gamma: float) -> float:
    """sigma of the model u = v + v^gamma * eta (u on the 0-255 scale)."""
    return estimate_noise_sigma(stabilise(u, gamma))


class OBNLM(Denoiser):
    name = "obnlm"
    summary = "optimized Bayesian non-local means for speckle (Coupé et al. 2009)"
    params = (
        Param("search_radius", 7, "search area radius M (pixels)", kind=int, low=1, high=20),
        Param(
            "block_radius", 2, "block radius alpha (block side 2*alpha+1)", kind=int, low=0, high=10
        ),
        Param("step", 2, "distance n between block centres", kind=int, low=1, high=10),
        Param("gamma", 0.5, "speckle model exponent (u = v + v^gamma eta)", low=0.0, high=1.0),
        Param(
            "h",
            None,
            "smoothing on the 0-255 scale; None estimates it from the image",
            kind=float,
            low=1e-6,
            high=1e4,
            allow_none=True,
        ),
        Param("h_factor", 1.0, "multiplies the estimated h (when h is None)", low=1e-3, high=100.0),
        Param(
            "noise",
            "speckle",
            "how sigma is estimated when h is None: speckle (homogeneous patches, "
            "usdenoise.noise.estimate) or wavelet (finest-band MAD, the old default)",
            kind=str,
            choices=("speckle", "wavelet"),
        ),
        Param(
            "mean_ratio",
            0.95,
            "block pre-selection: lower bound of the mean ratio (0 = off)",
            low=0.0,
            high=1.0,
        ),
        Param(
            "var_ratio",
            0.5,
            "block pre-selection: lower bound of the variance ratio (0 = off)",
            low=0.0,
            high=1.0,
        ),
    )
    # set from `params` by Denoiser.__init__
    search_radius: int
    block_radius: int
    step: int
    gamma: float
    h: float | None
    h_factor: float
    noise: str
    mean_ratio: float
    var_ratio: float

    def check_config(self) -> None:
        if self.step > 2 * self.block_radius + 1:
            raise UsdenoiseError(
                f"{self.name}: parameter step={self.step} leaves pixels uncovered; it must be "
                f"at most the block side 2*block_radius+1 = {2 * self.block_radius + 1}"
            )
        # reflect padding by search_radius + block_radius (+ step - 1) needs a larger image
        self.min_size = self.search_radius + self.block_radius + self.step

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._one(image[None]) for image in x.float()])

    def _one(self, u: torch.Tensor) -> torch.Tensor:
        """u: [1, 1, H, W] in [0, 1] -> same shape."""
        _, _, height, width = u.shape
        u = u * SCALE
        if self.h is not None:
            h = self.h
        else:
            sigma = self._sigma(u[0, 0].cpu().double().numpy())
            if sigma is None:
                return u / SCALE
            h = self.h_factor * math.sqrt(2.0) * sigma
        if h <= 0.0:
            return u / SCALE
        m, a, n = self.search_radius, self.block_radius, self.step
        k = 2 * a + 1
        # extend bottom/right so that the block-centre grid 0, n, 2n, ... ends on the last row
        ey, ex = (-(height - 1)) % n, (-(width - 1)) % n
        if ey or ex:
            u = F.pad(u, (0, ex, 0, ey), mode="reflect")
        hh, ww = u.shape[-2:]
        r = m + a
        p = F.pad(u, (r, r, r, r), mode="reflect")[0, 0].contiguous()
        qh, qw = hh + 2 * a, ww + 2 * a  # region holding every block of every centre
        centre = p[m : m + qh, m : m + qw]
        side = 2 * m + 1

        def row(t: torch.Tensor, dy: int, height: int, width: int, stride: int = 1):
            """Views of t shifted by (dy, -m..m), stacked: [side, height, width], no copy."""
            base = t.storage_offset() + (m + dy) * t.stride(0)
            return t.as_strided((side, height, width), (1, t.stride(0) * stride, stride), base)

        # block means / variances at every pixel of p (stride 1), for the pre-selection
        select = self.mean_ratio > 0.0 or self.var_ratio > 0.0
        if select:
            pm = F.avg_pool2d(p[None, None], k, stride=1)[0, 0]
            pv = (F.avg_pool2d((p * p)[None, None], k, stride=1)[0, 0] - pm * pm).clamp_min(0)
            gh, gw = (hh - 1) // n + 1, (ww - 1) // n + 1
            c_mean = pm[m : m + qh : n, m : m + qw : n][:gh, :gw] + _EPS
            c_var = pv[m : m + qh : n, m : m + qw : n][:gh, :gw] + _EPS
            lo_m, hi_m = self.mean_ratio, 1.0 / max(self.mean_ratio, _EPS)
            lo_v, hi_v = self.var_ratio, 1.0 / max(self.var_ratio, _EPS)
        # pass 1: Pearson distances and weights at the block centres, one row of offsets
        # (fixed dy, all dx) at a time
        weights = []
        for dy in range(-m, m + 1):
            s = row(p, dy, qh, qw)
            denom = s.clamp_min(0.0)
            if self.gamma != 0.5:
                denom = denom.pow_(2.0 * self.gamma)
            term = centre - s
            term.mul_(term).div_(denom.add_(_EPS))
            dist = F.avg_pool2d(term[:, None], k, stride=n)[:, 0]
            w = dist.mul_(-1.0 / (h * h)).exp_()
            if select:
                ratio_m = c_mean / (row(pm, dy, gh, gw, n) + _EPS)
                ratio_v = c_var / (row(pv, dy, gh, gw, n) + _EPS)
                keep = (ratio_m > lo_m) & (ratio_m < hi_m) & (ratio_v > lo_v) & (ratio_v < hi_v)
                w.mul_(keep)
            weights.append(w)
        w = torch.cat(weights)  # [offsets, gh, gw], offset index (dy + m) * side + (dx + m)
        self_index = m * side + m
        w[self_index] = 0.0
        w[self_index] = w.amax(dim=0).clamp_min(_EPS)
        w.div_(w.sum(dim=0, keepdim=True))
        # pass 2: each pixel gathers sum_o u(x + o) * (sum of w_o over the blocks covering x)
        box = torch.ones(1, 1, k, k, dtype=u.dtype, device=u.device)
        count = F.conv_transpose2d(torch.ones_like(w[:1, None]), box, stride=n)[0, 0]
        total = torch.zeros(qh, qw, dtype=u.dtype, device=u.device)
        for i, dy in enumerate(range(-m, m + 1)):
            spread = F.conv_transpose2d(w[i * side : (i + 1) * side, None], box, stride=n)
            total += spread[:, 0].mul_(row(p, dy, qh, qw)).sum(dim=0)
        out = (total / count)[a : a + hh, a : a + ww][:height, :width]
        return (out / SCALE)[None, None]

    def _sigma(self, u: np.ndarray) -> float | None:
        """Model sigma of u (0-255 scale), or None (after a warning) when it is too small."""
        what, sigma = "wavelet-estimate", None
        if self.noise == "speckle":
            estimate = speckle_estimate(self.name, u / SCALE)
            if estimate is not None:
                measured = measure_patches(
                    stabilise(u, self.gamma), estimate.positions, patch=estimate.patch
                )
                what, sigma = "speckle-estimate", float(measured.level or 0.0)
        if sigma is None:
            sigma = estimate_model_sigma(u, self.gamma)
        if sigma < MIN_LEVEL:
            warn_no_noise(self.name, what, sigma)
            return None
        return sigma
