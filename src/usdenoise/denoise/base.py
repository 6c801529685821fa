"""The one interface every denoiser has, classic filter or network.

A denoiser declares its parameters as `Param`s (type, default, range, doc), so the command
line can list them, parse `--param key=value` and reject bad values with one clear line.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.params import STRENGTH, Param, blend  # noqa: F401  (Param re-exported)
from usdenoise.core.tensors import check_batch

#: how far outside [0, 1] a float input may stray (rounding of an upstream computation)
RANGE_TOLERANCE = 1e-4


class Denoiser(nn.Module):
    """Base class: `denoise(x[B,1,H,W]) -> same shape, values in [0, 1]`.

    A denoiser is an `nn.Module`: `denoiser(x)` is `denoiser.denoise(x)` (tiling and strength
    included), so it composes with other modules and moves with `.to(device)`. The input must
    be a float tensor with values in [0, 1] (up to `RANGE_TOLERANCE`); integer tensors and
    unscaled floats (0-255) are refused with a one-line error that says how to scale them
    (`usdenoise.denoise_image` takes any dtype and layout and scales for you).

    Subclasses set `name`, `params` and implement `_denoise`. Parameters are keyword-only and
    validated here, then available as attributes (`self.window`, ...). Every method also
    takes `strength` (α, `STRENGTH`): the output is α · denoised + (1 − α) · input, the one
    knob that turns any method down the same way. A class may list it among its own `params`
    (the networks do); otherwise it enters `config` only when given.
    """

    name: ClassVar[str] = "denoiser"
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: smallest image side the method accepts (window filters need a few pixels)
    min_size: int = 1

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        known = {p.name: p for p in self.params}
        strength = None if "strength" in known else kwargs.pop("strength", None)
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise UsdenoiseError(
                f"{self.name}: unknown parameter {unknown[0]!r} (parameters: {names})"
            )
        self.config: dict[str, Any] = {}
        for p in self.params:
            value = p.coerce(kwargs[p.name], owner=self.name) if p.name in kwargs else p.default
            self.config[p.name] = value
            setattr(self, p.name, value)
        if "strength" not in known:
            self.strength = STRENGTH.default
            if strength is not None:
                self.strength = self.config["strength"] = STRENGTH.coerce(strength,
                                                                          owner=self.name)
        self.check_config()
        self.eval()

    def check_config(self) -> None:
        """Cross-parameter checks; raise UsdenoiseError. Override where needed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`denoiser(x)`: the same as `denoiser.denoise(x)`."""
        return self.denoise(x)

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, self.name, channels=1, floating=False)
        check_unit_range(x, self.name)
        if min(x.shape[-2:]) < self.min_size:
            raise UsdenoiseError(
                f"{self.name}: image {tuple(x.shape[-2:])} is smaller than the "
                f"{self.min_size}-pixel minimum for these parameters"
            )
        x32 = x.float()
        if self.strength == 0.0:
            return x32.clamp(0.0, 1.0).to(x.dtype)  # the input itself: nothing to compute
        with torch.no_grad():
            y = self._denoise(x32)
            if self.strength < 1.0:
                y = blend(y, x32, self.strength)
        return y.clamp(0.0, 1.0).to(x.dtype)

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.name}({args})"


def check_unit_range(x: torch.Tensor, what: str) -> None:
    """`x` must be a float tensor with finite values in [0, 1] (up to `RANGE_TOLERANCE`)."""
    if not x.is_floating_point():
        kind = "an integer" if x.dtype != torch.bool else "a boolean"
        raise UsdenoiseError(
            f"{what}: got {kind} tensor ({x.dtype}); expected float values in [0, 1]: "
            "divide by the dtype's maximum first (x.float() / 255 for uint8), or call "
            "usdenoise.denoise_image(x), which scales integer images for you"
        )
    if x.numel() == 0:
        return
    lo, hi = torch.aminmax(x.detach().float())
    lo_f, hi_f = float(lo), float(hi)
    if lo_f != lo_f or hi_f != hi_f or not torch.isfinite(x).all():
        raise UsdenoiseError(f"{what}: input contains NaN/Inf values")
    if lo_f < -RANGE_TOLERANCE or hi_f > 1.0 + RANGE_TOLERANCE:
        hint = " (looks like 0-255 data: divide by 255)" if hi_f > 1.5 else ""
        raise UsdenoiseError(
            f"{what}: input values span [{lo_f:.4g}, {hi_f:.4g}], outside [0, 1]{hint}; "
            "scale to [0, 1] first, e.g. (x - x.min()) / (x.max() - x.min()) for arbitrary "
            "floats"
        )


class Identity(Denoiser):
    """The `noisy` row of every benchmark: returns its input."""

    name = "noisy"
    summary = "no denoising (the noisy input itself, as a baseline)"

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        return x
