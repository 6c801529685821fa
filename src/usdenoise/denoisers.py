"""The registry of every denoiser (classic filters and networks) behind one interface.

Every denoiser also takes `strength` (α in [0, 1], default 1): the output is
α · denoised + (1 − α) · input. It is the one knob that turns any method down the same way,
which `usdenoise study --tune-strength` sets by the segmentation result instead of by PSNR
(a fully smoothed image can look clean and still move the head border).
"""

from __future__ import annotations

from typing import Any

import torch

from usdenoise.classic import CLASSIC
from usdenoise.denoiser import Denoiser, Identity, Param
from usdenoise.errors import UsdenoiseError
from usdenoise.models import NETWORKS

DENOISERS: dict[str, type[Denoiser]] = {"noisy": Identity, **CLASSIC, **NETWORKS}

STRENGTH = Param("strength", 1.0, "blend α·denoised + (1−α)·input (every method)",
                 low=0.0, high=1.0)


class Blended(Denoiser):
    """A denoiser turned down: α · inner(x) + (1 − α) · x."""

    def __init__(self, inner: Denoiser, strength: float) -> None:  # noqa: D107
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  (an instance reports the inner method)
        self.min_size = inner.min_size
        self.strength = float(STRENGTH.coerce(strength, owner=inner.name))
        self.config = {**inner.config, "strength": self.strength}

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        if self.strength == 0.0:
            return x
        y = self.inner._denoise(x).clamp(0.0, 1.0)
        return self.strength * y + (1.0 - self.strength) * x


def make_denoiser(name: str, **params: Any) -> Denoiser:
    """Build a registered denoiser by name; parameters may be strings from the command line.

    `strength` wraps a method that has no such parameter of its own in `Blended`.
    """
    key = name.strip().lower()
    if key not in DENOISERS:
        raise UsdenoiseError(
            f"unknown method {name!r} (known: {', '.join(sorted(DENOISERS))})"
        )
    cls = DENOISERS[key]
    if any(p.name == "strength" for p in cls.params):  # the networks blend by themselves
        return cls(**params)
    strength = params.pop("strength", None)
    denoiser = cls(**params)
    return denoiser if strength is None else Blended(denoiser, strength)


def parse_params(items: list[str] | None) -> dict[str, str]:
    """`["window=7", "damping=1"]` -> {"window": "7", "damping": "1"}."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsdenoiseError(f"--param {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out
