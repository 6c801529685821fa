"""Classic despeckling filters, one small module each, collected in `CLASSIC`."""

from __future__ import annotations

from usdenoise.denoiser import Denoiser

# name -> Denoiser subclass; `usdenoise.denoisers.DENOISERS` merges this in.
CLASSIC: dict[str, type[Denoiser]] = {}
