"""Speckle reducing anisotropic diffusion, SRAD (Yu & Acton, IEEE TIP 11(11), 2002).

Per iteration, with the differences d_N, d_S, d_W, d_E to the four neighbours:

    |grad I|^2 / I^2 = (d_N^2 + d_S^2 + d_W^2 + d_E^2) / I^2,   L = (d_N + d_S + d_W + d_E) / I
    q^2 = (|grad I|^2 / (2 I^2) - L^2 / 16) / (1 + L / 4)^2        (instantaneous cv)
    c   = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2))), clipped to [0, 1]
    I  <- I + dt * (c(i+1,j) d_S + c(i,j) d_N + c(i,j+1) d_E + c(i,j) d_W)

The speckle scale q0(t) follows the paper's approximation q0(t) = q0 exp(-rho t), rho = 1/6,
t = iteration * dt; q0 itself is the noise coefficient of variation std/mean of a
homogeneous area, given or estimated at t = 0 from the most homogeneous 7 x 7 windows (the
same estimator as `lee`). The explicit scheme is stable (maximum principle) for
dt <= 1/4 because c lies in [0, 1]; larger steps raise UsdenoiseError. (Implementations
that write the update as I + (lambda / 4) * div, e.g. Rodinia's, use lambda = 4 * dt.)
Boundaries: reflect padding (ghost pixels mirrored about the edge pixel).
"""

from __future__ import annotations

import math

import torch

from usdenoise.classic._local import check_time_step, local_stats, noise_cv2
from usdenoise.denoiser import Denoiser, Param

ESTIMATION_WINDOW = 7
_EPS = 1e-6


def _refresh_border(p: torch.Tensor) -> None:
    """Re-mirror the 1-pixel frame of a padded [.., H+2, W+2] buffer (reflect padding)."""
    p[..., 0, :] = p[..., 2, :]
    p[..., -1, :] = p[..., -3, :]
    p[..., :, 0] = p[..., :, 2]
    p[..., :, -1] = p[..., :, -3]


def srad_step(p: torch.Tensor, cpad: torch.Tensor, q0_2: float, dt: float) -> None:
    """One SRAD iteration in place on a reflect-padded image `p` ([..., H+2, W+2]).

    `cpad` is a scratch buffer of p's shape for the diffusion coefficient, `q0_2` is q0(t)^2.
    The paper's q^2 is evaluated without dividing by I: with a = sum of the 4 differences
    and m = I + a / 4 (the mean of the 4 neighbours, = I (1 + L / 4)),
    q^2 = (sum d^2 / 2 - a^2 / 16) / m^2, and c = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2)))
    = q0^2 (1 + q0^2) m^2 / (q0^4 m^2 + sum d^2 / 2 - a^2 / 16). Same values for I > 0, no
    division by zero on black pixels (c = 0 where the whole neighbourhood is 0).
    """
    ic = p[..., 1:-1, 1:-1]
    d_n = p[..., :-2, 1:-1] - ic
    d_s = p[..., 2:, 1:-1] - ic
    d_w = p[..., 1:-1, :-2] - ic
    d_e = p[..., 1:-1, 2:] - ic
    num = d_n * d_n
    num.addcmul_(d_s, d_s).addcmul_(d_w, d_w).addcmul_(d_e, d_e)
    a = d_n + d_s
    a += d_w
    a += d_e
    m = torch.add(ic, a, alpha=0.25)
    num.mul_(0.5).addcmul_(a, a, value=-1.0 / 16.0)
    m.mul_(m)
    num.add_(m, alpha=q0_2 * q0_2).add_(_EPS * _EPS)
    c = cpad[..., 1:-1, 1:-1]
    torch.mul(m, q0_2 * (1.0 + q0_2), out=c)
    c.div_(num).clamp_(0.0, 1.0)
    _refresh_border(cpad)
    flux = d_n.add_(d_w).mul_(c)
    flux.addcmul_(cpad[..., 2:, 1:-1], d_s).addcmul_(cpad[..., 1:-1, 2:], d_e)
    ic.add_(flux, alpha=dt)
    _refresh_border(p)


class SRAD(Denoiser):
    name = "srad"
    summary = "speckle reducing anisotropic diffusion (Yu & Acton 2002)"
    params = (
        Param("iterations", 100, "number of diffusion steps", kind=int, low=1, high=100_000),
        Param("time_step", 0.05, "time step dt per iteration (<= 0.25 for stability)"),
        Param(
            "q0",
            None,
            "speckle coefficient of variation at t=0; None estimates it from the most "
            "homogeneous 7x7 windows",
            low=0.0,
            high=5.0,
            allow_none=True,
        ),
        Param("rho", 1.0 / 6.0, "decay rate of q0(t) = q0 exp(-rho t)", low=0.0, high=10.0),
    )
    min_size = 3

    def check_config(self) -> None:
        check_time_step(self.name, self.time_step)

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        if self.q0 is None:
            mean, var = local_stats(x, min(ESTIMATION_WINDOW, *x.shape[-2:]) | 1)
            q0_2 = noise_cv2(x, None, mean, var)
        else:
            q0_2 = torch.full((x.shape[0], 1, 1, 1), self.q0**2, dtype=x.dtype)
        out = torch.empty_like(x)
        # one image at a time: its working set stays in cache (3x faster than the batch)
        for i in range(x.shape[0]):
            q0_2_i = max(float(q0_2[i]), 1e-12)
            p = torch.nn.functional.pad(x[i : i + 1], (1, 1, 1, 1), mode="reflect")
            cpad = torch.empty_like(p)
            for n in range(self.iterations):
                decay = math.exp(-2.0 * self.rho * n * self.time_step)
                srad_step(p, cpad, q0_2_i * decay, self.time_step)
            out[i] = p[0, :, 1:-1, 1:-1]
        return out
