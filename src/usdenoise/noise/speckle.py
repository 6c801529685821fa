"""Speckle noise models: small `nn.Module`s that draw from an explicit `torch.Generator`.

Every model maps a batch `x[B, C, H, W]` (values in [0, 1], any float dtype, any device) to a
noisy batch of the same shape, dtype and device, clipped to [0, 1]. Models are registered in
`NOISES` and built from a short spec string::

    make_noise("rayleigh:0.25")       # one level for every image
    make_noise("rayleigh:0.1-0.75")   # a level drawn per image, uniform in [0.1, 0.75]
    make_noise("mixture:rayleigh:0.1-0.75|gamma:1-8|physics:0.05-0.2")
                                      # per image: pick one spec (equal odds), then its level

The same generator state gives the same noise; random numbers are drawn on the generator's
device and moved to the input's, so a CPU generator also drives CUDA inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, cast

import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.params import Param
from usdenoise.core.specs import parse_level_range, parse_number, split_spec
from usdenoise.core.tensors import check_batch
from usdenoise.noise.physics import (
    EULER_GAMMA,
    LOG_SPECKLE_STD,
    SPECKLE_DB,
    BModeSystem,
    fisher_tippett,
    gamma_variates,
    normal,
    to_envelope,
    uniform,
)

__all__ = [
    "NOISES",
    "Gamma",
    "Gaussian",
    "LogCompressed",
    "Mixture",
    "Multiplicative",
    "NoiseModel",
    "Physics",
    "Rayleigh",
    "RayleighBiased",
    "Uniform",
    "add_speckle",
    "make_noise",
]

Level = float | tuple[float, float]


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Noise is computed in float64 for float64 input, else float32 (half types included)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class NoiseModel(nn.Module):
    """Base class: `forward(x[B,C,H,W], generator=None) -> noisy x`, clipped to [0, 1].

    A model holds a strength `level`, either one number or a range `(low, high)` from which
    each image draws its own level uniformly (with the generator). Subclasses implement
    `_corrupt(x, level[B,1,1,1], generator)` returning the unclipped result.
    """

    name: ClassVar[str] = "noise"
    summary: ClassVar[str] = ""
    #: name of the strength parameter (`var`, `sigma`, `L`)
    strength: ClassVar[str] = "sigma"
    #: strengths must be >= 0; those with `positive` must be > 0
    positive: ClassVar[bool] = False
    #: levels worth trying, for documentation and `usdenoise list`
    typical: ClassVar[tuple[float, ...]] = ()
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, level: Level) -> None:
        super().__init__()
        low, high = (level, level) if isinstance(level, (int, float)) else level
        low, high = float(low), float(high)
        what = f"noise {self.name}: {self.strength}"
        for value in (low, high):
            if not math.isfinite(value):
                raise UsdenoiseError(f"{what} {value!r} is not a finite number")
            if value < 0 or (self.positive and value == 0):
                bound = "positive" if self.positive else "at least 0"
                raise UsdenoiseError(f"{what} must be {bound}, got {value:g}")
        if high < low:
            raise UsdenoiseError(f"{what} range {low:g}-{high:g} runs backwards")
        self.low, self.high = low, high

    # -- construction from text -----------------------------------------------------------
    @classmethod
    def from_spec(cls, arg: str | None, *, spec: str) -> NoiseModel:
        """Build from the part after `name:` ("0.25" or "0.1-0.75")."""
        what = f"noise {spec!r}"
        if arg is None or not arg.strip():
            example = cls.typical[0] if cls.typical else 1
            raise UsdenoiseError(f"{what}: give a strength, e.g. {cls.name}:{example:g}")
        try:  # a plain number first, so "1e-3" is not read as a range
            float(arg)
        except ValueError:
            low, high = parse_level_range(arg, what=what)
        else:
            low = high = parse_number(arg, what=what)
        if cls.positive and low == 0:
            raise UsdenoiseError(f"{what}: {cls.strength} must be positive")
        return cls((low, high))

    @property
    def spec(self) -> str:
        """The spec string that rebuilds this model (`rayleigh:0.1-0.75`)."""
        if self.low == self.high:
            return f"{self.name}:{self.low:g}"
        return f"{self.name}:{self.low:g}-{self.high:g}"

    def extra_repr(self) -> str:
        return self.spec

    # -- sampling -------------------------------------------------------------------------
    def sample_levels(
        self,
        batch: int,
        generator: torch.Generator | None,
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """One level per image, `[batch]`: the fixed level, or uniform in [low, high]."""
        if self.low == self.high:
            return torch.full((batch,), self.low, device=device, dtype=dtype)
        u = uniform((batch,), generator, device, dtype)
        return self.low + (self.high - self.low) * u

    def draw(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, list[tuple[str, float]]]:
        """Noisy batch and, per image, the `(noise name, level)` that was drawn."""
        _check_batch(x, self.name)
        dtype = _work_dtype(x.dtype)
        levels = self.sample_levels(x.shape[0], generator, x.device, torch.float64)
        y = self._corrupt(x.to(dtype), levels.to(dtype).view(-1, 1, 1, 1), generator)
        info = [(self.name, float(v)) for v in levels.tolist()]
        return y.clamp_(0.0, 1.0).to(x.dtype), info

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.draw(x, generator=generator)[0]

    def _corrupt(
        self, x: torch.Tensor, level: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        raise NotImplementedError


class Multiplicative(NoiseModel):
    """`y = clip(x · f, 0, 1)` with an i.i.d. (spatially white) random factor `f`."""

    def factor(
        self,
        shape: tuple[int, ...],
        level: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The multiplicative factor `f` (before clipping); `level` broadcasts to `shape`."""
        level = torch.as_tensor(level, device=device, dtype=dtype)
        return self._factor(tuple(shape), level, generator, torch.device(device), dtype)

    @classmethod
    def moments(cls, level: float) -> tuple[float, float]:
        """Exact mean and variance of the factor `f` at one level."""
        raise NotImplementedError

    def _factor(self, shape, level, generator, device, dtype) -> torch.Tensor:
        raise NotImplementedError

    def _corrupt(self, x, level, generator):
        return x * self._factor(tuple(x.shape), level, generator, x.device, x.dtype)


class Gaussian(Multiplicative):
    """Gaussian multiplicative speckle: `y = clip(x + x·n, 0, 1)`, `n ~ N(0, var)`.

    The same model as scikit-image `random_noise(mode="speckle", var=var)`.
    Factor `f = 1 + n`: mean 1, variance `var`.
    """

    name = "gaussian"
    summary = "multiplicative Gaussian speckle, y = x + x*n, n ~ N(0, var) (scikit-image)"
    strength = "var"
    typical = (0.01, 0.04, 0.1)
    params = (Param("var", 0.04, "variance of n", low=0.0),)

    @classmethod
    def moments(cls, level):
        return 1.0, float(level)

    def _factor(self, shape, level, generator, device, dtype):
        return normal(shape, generator, device, dtype).mul_(level.sqrt()).add_(1.0)


class Uniform(Multiplicative):
    """Uniform multiplicative speckle: `y = clip(x + x·n, 0, 1)`, `n ~ U(-a, a)`, `a = √(3·var)`.

    MATLAB `imnoise(I, 'speckle', var)`: n uniform with mean 0 and variance `var`.
    Factor `f = 1 + n`: mean 1, variance `var`.
    """

    name = "uniform"
    summary = "multiplicative uniform speckle with variance var (MATLAB imnoise 'speckle')"
    strength = "var"
    typical = (0.01, 0.04, 0.1)
    params = (Param("var", 0.04, "variance of n", low=0.0),)

    @classmethod
    def moments(cls, level):
        return 1.0, float(level)

    def _factor(self, shape, level, generator, device, dtype):
        u = uniform(shape, generator, device, dtype)
        return u.mul_(2.0).sub_(1.0).mul_((3.0 * level).sqrt()).add_(1.0)


def _rayleigh(shape, level, generator, device, dtype) -> torch.Tensor:
    """R = σ·√(-2·ln(1 - U)), Rayleigh with scale σ (inversion; U in [0, 1) keeps R finite)."""
    u = uniform(shape, generator, device, dtype)
    return torch.log1p(u.neg_()).mul_(-2.0).sqrt_().mul_(level)


class Rayleigh(Multiplicative):
    """Zero-mean Rayleigh multiplicative speckle (Karaoğlu et al. 2022 levels 0.10–0.75).

    `y = clip(x · (1 + R - E[R]), 0, 1)`, `R ~ Rayleigh(scale σ)`, `E[R] = σ·√(π/2)`.
    Factor `f = 1 + R - E[R]`: mean 1 (brightness kept), variance `(4 - π)/2 · σ²`.
    """

    name = "rayleigh"
    summary = "zero-mean Rayleigh speckle, y = x*(1 + R - E[R]), R ~ Rayleigh(sigma)"
    typical = (0.10, 0.25, 0.50, 0.75)
    params = (Param("sigma", 0.25, "Rayleigh scale; levels 0.10, 0.25, 0.50, 0.75", low=0.0),)

    @classmethod
    def moments(cls, level):
        return 1.0, (4.0 - math.pi) / 2.0 * level**2

    def _factor(self, shape, level, generator, device, dtype):
        r = _rayleigh(shape, level, generator, device, dtype)
        return r.add_(1.0 - level * math.sqrt(math.pi / 2.0))


class RayleighBiased(Multiplicative):
    """Rayleigh multiplicative speckle *with* its mean: `y = clip(x · (1 + R), 0, 1)`.

    `R ~ Rayleigh(scale σ)`. This brightens the image by `1 + σ·√(π/2)` on average; it is the
    form used by a public re-implementation of Karaoğlu et al., offered for comparison only.
    Factor `f = 1 + R`: mean `1 + σ·√(π/2)`, variance `(4 - π)/2 · σ²`.
    """

    name = "rayleigh_biased"
    summary = "Rayleigh speckle y = x*(1 + R) that also brightens (comparison only)"
    typical = (0.10, 0.25, 0.50, 0.75)
    params = (Param("sigma", 0.25, "Rayleigh scale", low=0.0),)

    @classmethod
    def moments(cls, level):
        return 1.0 + level * math.sqrt(math.pi / 2.0), (4.0 - math.pi) / 2.0 * level**2

    def _factor(self, shape, level, generator, device, dtype):
        return _rayleigh(shape, level, generator, device, dtype).add_(1.0)


class Gamma(Multiplicative):
    """Fully developed L-look intensity speckle: `y = clip(x · g, 0, 1)`, `g ~ Gamma(L, 1/L)`.

    Shape L, scale 1/L: mean 1, variance `1/L` (L = 1 is single-look exponential intensity;
    larger L is weaker). Sampled with Marsaglia–Tsang from the generator
    (`speckle_physics.gamma_variates`), since torch's Gamma sampler takes no generator.
    """

    name = "gamma"
    summary = "L-look intensity speckle, y = x*g, g ~ Gamma(L, 1/L) (larger L is weaker)"
    strength = "L"
    positive = True
    typical = (1.0, 4.0, 16.0)
    params = (Param("L", 4.0, "number of looks, > 0; variance of g is 1/L", low=0.0),)

    @classmethod
    def moments(cls, level):
        return 1.0, 1.0 / level

    def _factor(self, shape, level, generator, device, dtype):
        return gamma_variates(level, shape, generator, device, dtype).div_(level)


class LogCompressed(NoiseModel):
    """Speckle on the envelope, then log compression: Fisher–Tippett noise of displayed B-mode.

    The displayed image `x` is mapped to an envelope `A = 10^((x - 1)·DR/20)`, multiplied by
    fully developed (Rayleigh-amplitude) speckle `√S`, `S ~ Exp(1)`, with the receiver gain
    `e^(γ/2)` that keeps the mean log-brightness, and log-compressed back with the same
    dynamic range `DR = 5.57 dB / σ`. The result is additive in the displayed domain::

        y = clip(x + σ·Z, 0, 1),   Z = (ln S + γ) / (π/√6)

    `Z` has mean 0, variance 1 and skewness -1.14 (Fisher–Tippett, a long dark tail), so σ is
    the standard deviation of the displayed speckle; σ = 0.093 is a B-mode shown at 60 dB.
    Computed in the log domain, so tiny σ (huge DR) does not underflow.
    """

    name = "logcompressed"
    summary = "log-compressed envelope speckle (Fisher-Tippett), y = x + sigma*Z"
    typical = (0.05, 0.1, 0.2)
    params = (Param("sigma", 0.1, "std of displayed speckle; DR = 5.57 dB/sigma", low=0.0),)

    @staticmethod
    def dynamic_range_db(sigma: float) -> float:
        """The display dynamic range that gives speckle of standard deviation `sigma`."""
        return SPECKLE_DB / sigma if sigma > 0 else math.inf

    def _corrupt(self, x, level, generator):
        z = fisher_tippett(tuple(x.shape), generator, x.device, x.dtype)
        return z.mul_(level).add_(x)


class Physics(NoiseModel):
    """B-mode image formation: spatially correlated speckle from scatterers and a PSF.

    1. Echogenicity to amplitude: `a = 10^((x - 1)·DR/20)` (the clean image read as a B-mode
       shown at `dynamic_range_db`, default 60 dB).
    2. Scatterers `a·n`, `n ~ N(0, 1)` i.i.d. per pixel (the real part of circular complex
       Gaussian scatterers; the RF line is real, so the Hilbert transform is meaningful).
    3. RF = PSF ⊛ scatterers, PSF separable: along depth `exp(-z²/2σ_a²)·cos(2π f z)`, laterally
       `exp(-u²/2σ_l²)` (pixel units: `axial_sigma`, `lateral_sigma`, `frequency` cycles/px).
    4. Envelope detection: analytic signal `z` by a one-sided spectrum along depth (Hilbert via
       FFT), intensity `|z|²`; its expectation `E|z|² = |t|² ⊛ a²` gives the noise-free B-mode
       `B(x) = 1 + 10·log10(E|z|²)/DR` (x blurred by the PSF, same brightness on flat areas).
    5. Log compression: `y = clip(B(x) + σ·Z, 0, 1)`, `Z = (ln(|z|²/E|z|²) + γ)/(π/√6)`.

    `Z` is the standardised log speckle (mean 0, variance 1, Fisher–Tippett marginal, like
    `logcompressed`) but correlated over the PSF size. σ is the displayed speckle standard
    deviation: σ = 5.57 dB / DR reproduces a real B-mode at `DR` dB (0.093 at 60 dB); σ = 0
    returns the noise-free `B(x)`. All convolutions are FFTs on a padded grid.
    """

    name = "physics"
    summary = "B-mode formation (scatterers, PSF, Hilbert envelope, log compression)"
    typical = (0.05, 0.1, 0.2)
    params = (
        Param("sigma", 0.1, "std of displayed speckle (0.093 = a B-mode at 60 dB)", low=0.0),
        Param("dynamic_range_db", 60.0, "dynamic range the clean image is read at", low=0.0),
        Param("axial_sigma", 1.5, "PSF Gaussian width along depth, pixels", low=0.0),
        Param("lateral_sigma", 2.5, "PSF Gaussian width laterally, pixels", low=0.0),
        Param("frequency", 0.25, "PSF centre frequency along depth, cycles/pixel", low=0.0),
    )

    def __init__(
        self,
        level: Level,
        *,
        dynamic_range_db: float = 60.0,
        axial_sigma: float = 1.5,
        lateral_sigma: float = 2.5,
        frequency: float = 0.25,
    ) -> None:
        super().__init__(level)
        values = {
            "dynamic_range_db": dynamic_range_db,
            "axial_sigma": axial_sigma,
            "lateral_sigma": lateral_sigma,
        }
        for key, value in values.items():
            if not (math.isfinite(value) and value > 0):
                raise UsdenoiseError(f"noise physics: {key} must be positive, got {value!r}")
        if not (math.isfinite(frequency) and 0 <= frequency <= 0.5):
            raise UsdenoiseError(
                f"noise physics: frequency must be in [0, 0.5] cycles/pixel, got {frequency!r}"
            )
        self.dynamic_range_db = float(dynamic_range_db)
        self.system = BModeSystem(
            axial_sigma=axial_sigma, lateral_sigma=lateral_sigma, frequency=frequency
        )

    def extra_repr(self) -> str:
        s = self.system
        return (
            f"{self.spec}, dynamic_range_db={self.dynamic_range_db:g}, "
            f"axial_sigma={s.axial_sigma:g}, lateral_sigma={s.lateral_sigma:g}, "
            f"frequency={s.frequency:g}"
        )

    def _amplitude(self, x: torch.Tensor) -> torch.Tensor:
        return to_envelope(self.system.pad(x), self.dynamic_range_db)

    def _display(self, mean_intensity: torch.Tensor) -> torch.Tensor:
        # 1 + 10·log10(E|z|²)/DR
        return mean_intensity.log_().mul_(10.0 / math.log(10.0) / self.dynamic_range_db).add_(1.0)

    def noise_free(self, x: torch.Tensor) -> torch.Tensor:
        """`B(x)`: the clean image through the same PSF and log compression, without speckle."""
        _check_batch(x, self.name)
        xw = x.to(_work_dtype(x.dtype))
        amplitude = self._amplitude(xw)
        hp, wp = amplitude.shape[-2:]
        _, power = self.system.transfers(hp, wp, amplitude.device, amplitude.dtype)
        mean = torch.fft.irfft2(torch.fft.rfft2(amplitude.square()) * power, s=(hp, wp))
        mean = mean.clamp_(min=torch.finfo(mean.dtype).tiny)
        base = self.system.crop(self._display(mean), *x.shape[-2:])
        return base.clamp_(0.0, 1.0).to(x.dtype)

    def speckle_field(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B(x), Z)` before scaling and clipping, in the work dtype; `y = clip(B + σ·Z)`."""
        amplitude = self._amplitude(x)
        noise = normal(tuple(amplitude.shape), generator, x.device, x.dtype)
        intensity, mean = self.system.simulate(amplitude, noise)
        z = intensity.div_(mean).log_().add_(EULER_GAMMA).div_(LOG_SPECKLE_STD)
        h, w = x.shape[-2:]
        return self.system.crop(self._display(mean), h, w), self.system.crop(z, h, w)

    def _corrupt(self, x, level, generator):
        base, z = self.speckle_field(x, generator=generator)
        return z.mul_(level).add_(base)


class Mixture(NoiseModel):
    """Blind training over several noises: each image picks one component, then its level.

    Spec: `mixture:SPEC|SPEC|...` with equal odds, e.g.
    `mixture:rayleigh:0.1-0.75|gamma:1-8|physics:0.05-0.2` (quote it in a shell; `|` keeps
    it apart from the `,` of noise lists). Python: `Mixture(["rayleigh:0.1-0.75", Physics(0.1)],
    weights=[2, 1])`. The component is drawn from the generator, then that component draws its
    own level and noise for the images it got.
    """

    name = "mixture"
    summary = "per image, one of several noise specs: mixture:rayleigh:0.1-0.75|gamma:1-8"
    strength = "components"

    def __init__(
        self,
        components: Sequence[NoiseModel | str],
        *,
        weights: Sequence[float] | None = None,
    ) -> None:
        nn.Module.__init__(self)
        models = [make_noise(c) for c in components]
        if not models:
            raise UsdenoiseError("noise mixture: give at least one component")
        if weights is None:
            weights = [1.0] * len(models)
        weights = [float(w) for w in weights]
        if len(weights) != len(models):
            raise UsdenoiseError(
                f"noise mixture: {len(weights)} weights for {len(models)} components"
            )
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise UsdenoiseError(f"noise mixture: weights {weights} must be >= 0, not all 0")
        self.components = nn.ModuleList(models)
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.low = self.high = float("nan")

    @classmethod
    def from_spec(cls, arg: str | None, *, spec: str) -> Mixture:
        if arg is None or not arg.strip():
            raise UsdenoiseError(
                f"noise {spec!r}: list the components, e.g. mixture:rayleigh:0.1-0.75|gamma:1-8"
            )
        parts = [p.strip() for p in arg.split("|")]
        if any(not p for p in parts):
            raise UsdenoiseError(f"noise {spec!r}: empty component between '|'")
        for part in parts:
            if split_spec(part, what="noise")[0] == cls.name:
                raise UsdenoiseError(f"noise {spec!r}: a mixture cannot contain a mixture spec")
        return cls(parts)

    @property
    def spec(self) -> str:
        # nn.ModuleList yields nn.Module to the type checker; its items are NoiseModels
        return f"{self.name}:" + "|".join(cast(NoiseModel, m).spec for m in self.components)

    def extra_repr(self) -> str:
        return "weights=" + ", ".join(f"{w:.3g}" for w in self.weights)

    def draw(self, x, *, generator=None):
        _check_batch(x, self.name)
        batch = x.shape[0]
        cumulative = torch.tensor(self.weights, dtype=torch.float64).cumsum(0)
        u = uniform((batch,), generator, torch.device("cpu"), torch.float64)
        choice = torch.searchsorted(cumulative, u, right=True).clamp_(max=len(self.weights) - 1)
        out = torch.empty_like(x)
        info: list[tuple[str, float]] = [("", 0.0)] * batch
        for k, model in enumerate(self.components):
            index = (choice == k).nonzero().flatten()
            if index.numel() == 0:
                continue
            y, sub = cast(NoiseModel, model).draw(x[index.to(x.device)], generator=generator)
            out[index.to(x.device)] = y
            for i, item in zip(index.tolist(), sub, strict=True):
                info[i] = item
        return out, info


NOISES: dict[str, type[NoiseModel]] = {
    cls.name: cls
    for cls in (Gaussian, Uniform, Rayleigh, RayleighBiased, Gamma, LogCompressed, Physics, Mixture)
}


def make_noise(spec: str | NoiseModel) -> NoiseModel:
    """`"rayleigh:0.25"`, `"rayleigh:0.1-0.75"` (level per image) or `"mixture:a|b"` -> model.

    A `NoiseModel` is returned as it is. Unknown names and bad strengths raise UsdenoiseError.
    """
    if isinstance(spec, NoiseModel):
        return spec
    if not isinstance(spec, str):
        raise UsdenoiseError(f"noise: expected a spec string like 'rayleigh:0.25', got {spec!r}")
    name, arg = split_spec(spec, what="noise")
    cls = NOISES.get(name)
    if cls is None:
        raise UsdenoiseError(f"noise {spec!r}: unknown noise {name!r} (known: {', '.join(NOISES)})")
    return cls.from_spec(arg, spec=spec.strip())


def add_speckle(
    x: torch.Tensor,
    spec: str | NoiseModel,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply a noise spec to `x` shaped [H,W], [C,H,W] or [B,C,H,W]; same shape back, in [0,1]."""
    model = make_noise(spec)
    if not isinstance(x, torch.Tensor) or x.ndim not in (2, 3, 4):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UsdenoiseError(
            f"add_speckle: expected a [H,W], [C,H,W] or [B,C,H,W] tensor, got {shape}"
        )
    batch = x.reshape((1,) * (4 - x.ndim) + tuple(x.shape))
    return model(batch, generator=generator).reshape(x.shape)


def _check_batch(x: object, name: str) -> None:
    check_batch(x, f"noise {name}")
