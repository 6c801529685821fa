"""Old import path, kept so existing code works: use `usdenoise.noise.speckle`."""

from usdenoise.noise.speckle import *  # noqa: F401, F403
