"""Display <-> envelope mapping and B-mode image formation for the speckle models.

Pixel units throughout: the image rows are depth (axial), the columns are lateral.

Displayed B-mode intensity `x` in [0, 1] and the envelope `A` (linear amplitude, 1 = the
brightest displayed value) are linked by log compression to a dynamic range of `DR` dB::

    x = 1 + 20·log10(A) / DR            (x < 0, i.e. A below -DR dB, is shown as black)
    A = 10 ** ((x - 1) · DR / 20)

Fully developed speckle makes the intensity `|z|²` exponential about its local mean, so after
log compression the speckle is additive and Fisher–Tippett (log-exponential) distributed:
`ln S` with `S ~ Exp(1)` has mean `-γ` (Euler's constant) and standard deviation `π/√6`,
which is `SPECKLE_DB` = 5.57 dB in `10·log10` units.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

#: Euler–Mascheroni constant: E[ln S] = -EULER_GAMMA for S ~ Exp(1)
EULER_GAMMA = 0.5772156649015329
#: standard deviation of ln S for S ~ Exp(1)
LOG_SPECKLE_STD = math.pi / math.sqrt(6.0)
#: standard deviation of 10·log10(S), S ~ Exp(1): fully developed speckle on a dB scale
SPECKLE_DB = 10.0 / math.log(10.0) * LOG_SPECKLE_STD


def to_envelope(x: torch.Tensor, dynamic_range_db: float | torch.Tensor) -> torch.Tensor:
    """Displayed intensity in [0, 1] -> envelope amplitude: `A = 10 ** ((x - 1)·DR/20)`."""
    return torch.pow(10.0, (x - 1.0) * dynamic_range_db / 20.0)


def to_display(envelope: torch.Tensor, dynamic_range_db: float | torch.Tensor) -> torch.Tensor:
    """Envelope amplitude -> displayed intensity `1 + 20·log10(A)/DR` (not clipped)."""
    return 1.0 + 20.0 * torch.log10(envelope) / dynamic_range_db


def _draw(sampler, shape, generator, device, dtype) -> torch.Tensor:
    """Sample where the generator lives (a CPU generator stays valid for CUDA inputs)."""
    where = generator.device if generator is not None else device
    return sampler(shape, generator=generator, device=where, dtype=dtype).to(device)


def uniform(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """U[0, 1) drawn from `generator` (on the generator's own device), moved to `device`."""
    return _draw(torch.rand, shape, generator, device, dtype)


def normal(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """N(0, 1) drawn from `generator` (on the generator's own device), moved to `device`."""
    return _draw(torch.randn, shape, generator, device, dtype)


def exponential(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Exp(1) by inversion, `-log1p(-U)`, with U clamped away from 0 so `ln S` stays finite.

    The clamp truncates the lower tail at probability `eps/4` (2**-25 in float32), far below
    anything a test or an image can see.
    """
    u = uniform(shape, generator, device, dtype)
    return torch.log1p(u.clamp_(min=torch.finfo(dtype).eps / 4).neg_()).neg_()


def fisher_tippett(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Standardised log-speckle `Z = (ln S + γ) / (π/√6)`, S ~ Exp(1): mean 0, variance 1.

    Z is Fisher–Tippett (Gumbel-minimum) distributed, skewness -1.1395 (a long dark tail).
    """
    s = exponential(shape, generator, device, dtype)
    return s.log_().add_(EULER_GAMMA).div_(LOG_SPECKLE_STD)


# ---------------------------------------------------------------------------------------------
# B-mode formation


def fast_fft_size(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3 and 5 (fast FFT lengths)."""
    m = max(int(n), 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def psf_kernels(
    *, axial_sigma: float, lateral_sigma: float, frequency: float, truncate: float = 4.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The separable point-spread function, sampled on the pixel grid (float64, 1-D each).

    axial (depth) `h_a(z) = exp(-z² / 2σ_a²) · cos(2π f z)`; lateral `h_l(u) = exp(-u² / 2σ_l²)`;
    both truncated at `truncate` widths. Not normalised here (see `BModeSystem`).
    """
    ra = max(1, math.ceil(truncate * axial_sigma))
    rl = max(1, math.ceil(truncate * lateral_sigma))
    z = torch.arange(-ra, ra + 1, dtype=torch.float64)
    u = torch.arange(-rl, rl + 1, dtype=torch.float64)
    axial = torch.exp(-0.5 * (z / axial_sigma) ** 2) * torch.cos(2 * math.pi * frequency * z)
    lateral = torch.exp(-0.5 * (u / lateral_sigma) ** 2)
    return axial, lateral


def _circular(kernel: torch.Tensor, n: int) -> torch.Tensor:
    """Place a centred odd-length 1-D kernel on a circular grid of length n (centre at 0)."""
    r = kernel.numel() // 2
    out = torch.zeros(n, dtype=kernel.dtype)
    for i, value in enumerate(kernel):
        out[(i - r) % n] += value
    return out


@functools.lru_cache(maxsize=32)
def _transfers(
    height: int,
    width: int,
    axial_sigma: float,
    lateral_sigma: float,
    frequency: float,
    truncate: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Transfer functions on a (height x width) periodic grid, float64/complex128 on the CPU.

    Returns
      `field`: [height//2 + 1, width] complex, maps `rfft` (axial) x `fft` (lateral) of the
        scatterer map to the analytic RF signal (PSF x one-sided Hilbert weights), scaled so
        that the complex PSF has unit energy, Σ|t|² = 1;
      `power`: [height, width//2 + 1] complex, `rfft2` of the intensity kernel |t|², so that
        E|z|² = |t|² ⊛ a² (the expected intensity for scatterer amplitudes a).
    """
    axial, lateral = psf_kernels(
        axial_sigma=axial_sigma, lateral_sigma=lateral_sigma, frequency=frequency,
        truncate=truncate,
    )
    ha = torch.fft.rfft(_circular(axial, height))  # [height//2+1]
    hl = torch.fft.fft(_circular(lateral, width))  # [width]
    weights = torch.full((height // 2 + 1,), 2.0, dtype=torch.float64)
    weights[0] = 1.0
    if height % 2 == 0:
        weights[-1] = 1.0
    field = (ha * weights)[:, None] * hl[None, :]
    # complex PSF t on the grid; normalise its energy to 1
    t = torch.fft.ifftn(field, s=(height,), dim=(0,))
    t = torch.fft.ifft(t, dim=1)
    energy = (t.abs() ** 2).sum()
    field = field / energy.sqrt()
    t = t / energy.sqrt()
    power = torch.fft.rfft2(t.abs() ** 2)
    return field, power


class BModeSystem:
    """Forms B-mode images from scatterer maps with a fixed separable PSF (pixel units).

    `simulate(amplitude[B,C,H,W], noise[B,C,H,W])` returns `(intensity, mean_intensity)`:
    `z = t ⊛ (a·n)` is the analytic RF signal (Hilbert transform along the depth axis, done as a
    one-sided spectrum with FFTs), `|z|²` the detected intensity (envelope squared) and
    `E|z|² = |t|² ⊛ a²` its expectation over the scatterers, used to standardise the speckle.
    Convolutions are circular on a grid padded by the PSF half-width (replicate padding, so
    no wrap-around reaches the image) and rounded up to a fast FFT length.
    """

    def __init__(
        self,
        *,
        axial_sigma: float = 1.5,
        lateral_sigma: float = 2.5,
        frequency: float = 0.25,
        truncate: float = 4.0,
    ) -> None:
        self.axial_sigma = float(axial_sigma)
        self.lateral_sigma = float(lateral_sigma)
        self.frequency = float(frequency)
        self.truncate = float(truncate)
        self.pad_axial = max(1, math.ceil(truncate * axial_sigma))
        self.pad_lateral = max(1, math.ceil(truncate * lateral_sigma))

    def padded_shape(self, height: int, width: int) -> tuple[int, int]:
        return (
            fast_fft_size(height + 2 * self.pad_axial),
            fast_fft_size(width + 2 * self.pad_lateral),
        )

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Replicate-pad a [B,C,H,W] map to the FFT grid (image offset by the PSF half-widths)."""
        h, w = x.shape[-2:]
        hp, wp = self.padded_shape(h, w)
        pa, pl = self.pad_axial, self.pad_lateral
        return F.pad(x, (pl, wp - w - pl, pa, hp - h - pa), mode="replicate")

    def crop(self, y: torch.Tensor, height: int, width: int) -> torch.Tensor:
        pa, pl = self.pad_axial, self.pad_lateral
        return y[..., pa : pa + height, pl : pl + width]

    def transfers(
        self, height: int, width: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        field, power = _transfers(
            height, width, self.axial_sigma, self.lateral_sigma, self.frequency, self.truncate
        )
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return field.to(device=device, dtype=cdtype), power.to(device=device, dtype=cdtype)

    def simulate(
        self, amplitude: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`amplitude`, `noise`: [B,C,Hp,Wp] on the padded grid -> (|z|², E|z|²), same shape."""
        hp, wp = amplitude.shape[-2:]
        field, power = self.transfers(hp, wp, amplitude.device, amplitude.dtype)
        spectrum = torch.fft.rfft(amplitude * noise, dim=-2)  # one-sided along depth
        spectrum = torch.fft.fft(spectrum, dim=-1)
        spectrum.mul_(field)
        z = torch.fft.ifft(spectrum, dim=-1)
        z = torch.fft.ifft(z, n=hp, dim=-2)  # zero negative axial frequencies: analytic signal
        intensity = torch.view_as_real(z).square().sum(-1)
        mean = torch.fft.irfft2(torch.fft.rfft2(amplitude.square()) * power, s=(hp, wp))
        tiny = torch.finfo(amplitude.dtype).tiny
        return intensity.clamp_(min=tiny), mean.clamp_(min=tiny)


def gamma_variates(
    concentration: torch.Tensor,
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Gamma(k, 1) variates for `concentration` k > 0 (broadcast to `shape`), from `generator`.

    `torch.distributions.Gamma` cannot take a generator, so this is Marsaglia & Tsang (2000):
    with d = k' - 1/3, c = 1/√(9d), draw z ~ N(0,1), u ~ U(0,1), v = (1 + c·z)³ and accept d·v
    when v > 0 and ln u < z²/2 + d - d·v + d·ln v; rejected entries are redrawn (over 95 %
    accept on the first pass). For k < 1 it samples k' = k + 1 and multiplies by u^(1/k).
    Deterministic for a given generator state.
    """
    k = concentration.to(device=device, dtype=dtype)  # broadcastable to `shape`, kept small
    small = k < 1
    d = torch.where(small, k + 1, k) - 1.0 / 3.0
    c = torch.rsqrt(9.0 * d)

    def attempt(dd, cc, n_shape):
        # in place where possible: fresh large tensors cost page faults on CPU
        z = normal(n_shape, generator, device, dtype)
        u = uniform(n_shape, generator, device, dtype)
        w = torch.mul(z, cc).add_(1.0)
        v = torch.mul(w, w).mul_(w)  # square() and pow() are slower on CPU
        ok = w > 0
        log_v = torch.clamp(v, min=1e-30, out=w).log_()
        # accept when ln u < z²/2 + d·(1 - v + ln v)
        bound = log_v.sub_(v).add_(1.0).mul_(dd).addcmul_(z, z, value=0.5)
        ok.logical_and_(u.log_() < bound)
        return v.mul_(dd), ok

    out, ok = attempt(d, c, tuple(shape))
    pending = (~ok).view(-1).nonzero().flatten()
    flat_out = out.view(-1)
    d_full, c_full = d.expand(shape), c.expand(shape)  # views, no copies
    while pending.numel():
        dd, cc = torch.take(d_full, pending), torch.take(c_full, pending)
        value, ok = attempt(dd, cc, (pending.numel(),))
        flat_out[pending[ok]] = value[ok]
        pending = pending[~ok]
    if bool(small.any()):
        u = uniform(tuple(shape), generator, device, dtype).clamp_(min=torch.finfo(dtype).tiny)
        out = torch.where(small, out * u.pow(1.0 / k.expand(shape)), out)
    return out
