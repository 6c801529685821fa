"""The registry of every denoiser (classic filters and networks) behind one interface.

Every denoiser also takes `strength` (α in [0, 1], `denoiser.STRENGTH`): the output is
α · denoised + (1 − α) · input. `usdenoise study --tune-strength` sets it by the
segmentation result instead of by PSNR (a fully smoothed image can look clean and still
move the head border).
"""

from __future__ import annotations

from typing import Any

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.base import Denoiser, Identity
from usdenoise.denoise.classic import CLASSIC
from usdenoise.denoise.network import DefaultDenoiser, NetworkDenoiser

# networks behind the Denoiser interface: the shipped model and any checkpoint
NETWORKS: dict[str, type[Denoiser]] = {"default": DefaultDenoiser, "network": NetworkDenoiser}
DENOISERS: dict[str, type[Denoiser]] = {"noisy": Identity, **CLASSIC, **NETWORKS}


def make_denoiser(name: str, **params: Any) -> Denoiser:
    """Build a registered denoiser by name; parameters may be strings from the command line
    (`strength` included: every method takes it, see `Denoiser`)."""
    key = name.strip().lower()
    if key not in DENOISERS:
        raise UsdenoiseError(
            f"unknown method {name!r} (known: {', '.join(sorted(DENOISERS))})"
        )
    return DENOISERS[key](**params)


def parse_params(items: list[str] | None) -> dict[str, str]:
    """`["window=7", "damping=1"]` -> {"window": "7", "damping": "1"}."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsdenoiseError(f"--param {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out
