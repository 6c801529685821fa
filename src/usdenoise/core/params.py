"""Declarative parameters: type, default, range and doc, checked the same way everywhere.

A denoiser (or noise model) declares its parameters as `Param`s, so the command line can
list them, parse `--param key=value` and reject bad values with one clear line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from usdenoise.core.errors import UsdenoiseError


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


def blend(denoised: Any, original: Any, strength: float) -> Any:
    """What `strength=α` computes for every method: α · denoised + (1 − α) · input."""
    return strength * denoised + (1.0 - strength) * original
