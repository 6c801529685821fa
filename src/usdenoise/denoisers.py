"""Old import path, kept so existing code works: use `usdenoise.denoise.registry`."""

from usdenoise.denoise.registry import DENOISERS, make_denoiser, parse_params  # noqa: F401
