"""Denoising networks (and, later, segmentation networks)."""

from __future__ import annotations

from usdenoise.denoiser import Denoiser

# name -> Denoiser subclass wrapping a network; merged into `usdenoise.denoisers.DENOISERS`.
NETWORKS: dict[str, type[Denoiser]] = {}
