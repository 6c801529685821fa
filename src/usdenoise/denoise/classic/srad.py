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

from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.classic._local import check_time_step, local_stats, noise_cv2

ESTIMATION_WINDOW = 7
_EPS = 1e-6


class _Workspace:
    """Buffers and fixed views for SRAD on one image of size h x w.

    The reflect-padded image `p` and coefficient `cpad` are updated in place, so the views
    on them (centre, four neighbours, ghost frame) are made once; every iteration then runs
    ~30 in-place or `out=` operations and allocates nothing.
    """

    def __init__(self, image: torch.Tensor) -> None:
        p = torch.nn.functional.pad(image[None, None], (1, 1, 1, 1), mode="reflect")[0, 0]
        self.p = p.contiguous()
        self.cpad = torch.zeros_like(self.p)
        p, cp = self.p, self.cpad
        self.ic, self.n, self.s = p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1]
        self.w, self.e = p[1:-1, :-2], p[1:-1, 2:]
        self.c, self.c_s, self.c_e = cp[1:-1, 1:-1], cp[2:, 1:-1], cp[1:-1, 2:]
        self.d_n, self.d_s, self.d_w, self.d_e, self.num, self.a, self.m = (
            torch.empty_like(self.ic) for _ in range(7)
        )
        # ghost frame = mirror about the edge pixel (corners are never read)
        self.p_frame = [(p[0], p[2]), (p[-1], p[-3]), (p[:, 0], p[:, 2]), (p[:, -1], p[:, -3])]
        # only the south and east neighbours' coefficients are read across the frame
        self.c_frame = [(cp[-1], cp[-3]), (cp[:, -1], cp[:, -3])]

    def step(self, q0_2: float, dt: float) -> None:
        """One SRAD iteration (see the module docstring).

        The paper's q^2 is evaluated without dividing by I: with a = sum of the 4
        differences and m = I + a / 4 (the mean of the 4 neighbours, = I (1 + L / 4)),
        q^2 = (sum d^2 / 2 - a^2 / 16) / m^2, so c = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2)))
        = q0^2 (1 + q0^2) m^2 / (q0^4 m^2 + sum d^2 / 2 - a^2 / 16). Same values for I > 0,
        and no division by zero on black pixels (c = 0 where the neighbourhood is all 0).
        """
        ic, d_n, d_s, d_w, d_e = self.ic, self.d_n, self.d_s, self.d_w, self.d_e
        num, a, m, c = self.num, self.a, self.m, self.c
        torch.sub(self.n, ic, out=d_n)
        torch.sub(self.s, ic, out=d_s)
        torch.sub(self.w, ic, out=d_w)
        torch.sub(self.e, ic, out=d_e)
        torch.mul(d_n, d_n, out=num)
        num.addcmul_(d_s, d_s).addcmul_(d_w, d_w).addcmul_(d_e, d_e)
        torch.add(d_n, d_s, out=a)
        a.add_(d_w).add_(d_e)
        torch.add(ic, a, alpha=0.25, out=m)
        m.mul_(m)
        num.mul_(0.5).addcmul_(a, a, value=-1.0 / 16.0)
        num.add_(m, alpha=q0_2 * q0_2).add_(_EPS * _EPS)
        torch.mul(m, q0_2 * (1.0 + q0_2), out=c)
        c.div_(num).clamp_(0.0, 1.0)
        for ghost, mirror in self.c_frame:
            ghost.copy_(mirror)
        flux = d_n.add_(d_w).mul_(c)
        flux.addcmul_(self.c_s, d_s).addcmul_(self.c_e, d_e)
        ic.add_(flux, alpha=dt)
        for ghost, mirror in self.p_frame:
            ghost.copy_(mirror)


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
    # set from `params` by Denoiser.__init__
    iterations: int
    time_step: float
    q0: float | None
    rho: float
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
            ws = _Workspace(x[i, 0])
            for n in range(self.iterations):
                decay = math.exp(-2.0 * self.rho * n * self.time_step)
                ws.step(q0_2_i * decay, self.time_step)
            out[i, 0] = ws.ic
        return out
