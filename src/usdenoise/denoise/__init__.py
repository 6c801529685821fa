"""Denoisers behind one interface: the `Denoiser` base, the classic filters (`classic`), the
network adapter (`network`), the registry, the `denoise` files job and the `evaluate`
benchmark (`benchmark`)."""

from usdenoise.denoise.base import Denoiser, Identity
from usdenoise.denoise.registry import DENOISERS, NETWORKS, make_denoiser, parse_params

__all__ = ["DENOISERS", "NETWORKS", "Denoiser", "Identity", "make_denoiser", "parse_params"]
