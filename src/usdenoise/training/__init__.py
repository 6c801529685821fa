"""Training: the one `fit()` loop (`loop`), its config, resumable state, DDP helpers and
the tasks it trains (`tasks`)."""

from usdenoise.training.config import TrainConfig, load_config
from usdenoise.training.loop import fit

__all__ = ["TrainConfig", "fit", "load_config"]
