"""Old import path, kept so existing code works: use `usdenoise.training.config`."""

from usdenoise.training.config import (  # noqa: F401
    TrainConfig,
    config_from_dict,
    load_config,
    parse_model_params,
    read_toml,
)
