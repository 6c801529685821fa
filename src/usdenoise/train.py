"""Old import path, kept so existing code works: use `usdenoise.training.loop`."""

from usdenoise.training.loop import fit  # noqa: F401
