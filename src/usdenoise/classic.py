"""Old import path, kept so existing code works: use `usdenoise.denoise.classic`."""

from usdenoise.denoise.classic import *  # noqa: F401, F403
from usdenoise.denoise.classic import CLASSIC  # noqa: F401, F403
