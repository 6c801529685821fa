"""The one interface every denoiser has, classic filter or network.

A denoiser declares its parameters as `Param`s (type, default, range, doc), so the command
line can list them, parse `--param key=value` and reject bad values with one clear line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from usdenoise.errors import UsdenoiseError


@dataclass(frozen=True)
class Param:
    """One keyword-only parameter of a denoiser."""

    name: str
    default: Any
    doc: str
    kind: type = float
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    allow_none: bool = False

    def coerce(self, value: Any, *, owner: str) -> Any:
        """Convert (strings from the command line too) and range-check a value."""
        where = f"{owner}: parameter {self.name}"
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            if self.allow_none:
                return None
            raise UsdenoiseError(f"{where} cannot be None")
        try:
            if self.kind is bool and isinstance(value, str):
                if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                value = value.lower() in {"true", "1", "yes"}
            elif self.kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            elif self.kind is int and isinstance(value, str):
                value = int(float(value)) if float(value).is_integer() else float("nan")
                if value != value:
                    raise ValueError(value)
            value = self.kind(value)
        except (TypeError, ValueError):
            raise UsdenoiseError(
                f"{where}: {value!r} is not of type {self.kind.__name__}"
            ) from None
        if self.kind in (int, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise UsdenoiseError(f"{where}: {value!r} is not finite")
            if self.low is not None and value < self.low:
                raise UsdenoiseError(f"{where}: {value} is below the minimum {self.low}")
            if self.high is not None and value > self.high:
                raise UsdenoiseError(f"{where}: {value} is above the maximum {self.high}")
        if self.choices is not None and value not in self.choices:
            raise UsdenoiseError(f"{where}: {value!r} is not one of {list(self.choices)}")
        return value

    def describe(self) -> str:
        bounds = ""
        if self.low is not None or self.high is not None:
            low = "" if self.low is None else self.low
            high = "" if self.high is None else self.high
            bounds = f" [{low}..{high}]"
        if self.choices:
            bounds = f" {{{', '.join(map(str, self.choices))}}}"
        return f"{self.name}={self.default!r}{bounds}: {self.doc}"


STRENGTH = Param("strength", 1.0, "blend α·denoised + (1−α)·input (every method)",
                 low=0.0, high=1.0)


class Denoiser:
    """Base class: `denoise(x[B,1,H,W]) -> same shape, values in [0, 1]`.

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

    def check_config(self) -> None:
        """Cross-parameter checks; raise UsdenoiseError. Override where needed."""

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise UsdenoiseError(
                f"{self.name}: expected a [B, 1, H, W] tensor, got shape {tuple(x.shape)}"
            )
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
                y = self.strength * y + (1.0 - self.strength) * x32
        return y.clamp(0.0, 1.0).to(x.dtype)

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.name}({args})"


class Identity(Denoiser):
    """The `noisy` row of every benchmark: returns its input."""

    name = "noisy"
    summary = "no denoising (the noisy input itself, as a baseline)"

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        return x
