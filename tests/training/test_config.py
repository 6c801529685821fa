"""TrainConfig: defaults, TOML loading, and one-line errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from usdenoise.core.errors import UsdenoiseError
from usdenoise.training.config import (
    TrainConfig,
    config_differences,
    config_from_dict,
    load_config,
    parse_model_params,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_study() -> None:
    config = TrainConfig()
    assert (config.arch, config.preset, config.loss) == ("diconvae", "fast", "l1+msssim")
    assert config.lr == 1e-3 and config.schedule == "cosine"
    assert config.amp is None  # decided by the device: bf16 on CUDA, off on CPU


def test_toml_loads_every_kind_of_value(tmp_path: Path) -> None:
    path = _write(tmp_path, """
data = "phantom:12"
arch = "dncnn"
preset = "fast"
epochs = 3
lr = 1            # an integer where a float is expected is fine
clip_grad = 0.5
amp = false
channels_last = true
[model]
channels = 4
depth = 2
""")
    config = load_config(path)
    assert config.data == "phantom:12" and config.arch == "dncnn" and config.epochs == 3
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.clip_grad == 0.5 and config.amp is False and config.channels_last is True
    assert config.model == {"channels": 4, "depth": 2}


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "epochs = 3\nseed = 1\n")
    config = load_config(path, epochs=7)
    assert (config.epochs, config.seed) == (7, 1)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("epoch = 3", ["unknown key 'epoch'"]),
        ('epochs = "3"', ["key 'epochs'", "integer", "str"]),
        ("epochs = 2.5", ["key 'epochs'", "integer"]),
        ("amp = 1", ["key 'amp'", "true/false"]),
        ("lr = true", ["key 'lr'", "number"]),
        ("model = 3", ["key 'model'", "table"]),
        ("epochs = 0", ["epochs must be at least 1"]),
        ("lr = -1.0", ["lr must be positive"]),
        ('schedule = "step"', ["schedule 'step'"]),
        ("clip_grad = 0", ["clip_grad must be positive"]),
        ("epochs = ", ["not valid TOML"]),
    ],
)
def test_bad_file_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UsdenoiseError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsdenoiseError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_python_construction_is_checked_too() -> None:
    with pytest.raises(UsdenoiseError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(UsdenoiseError, match="key 'epochs'"):
        TrainConfig(epochs="3")  # type: ignore[arg-type]


def test_config_from_dict_names_its_source() -> None:
    with pytest.raises(UsdenoiseError, match="^command line: unknown key 'nope'"):
        config_from_dict({"nope": 1}, where="command line")


def test_differences_ignore_settings_that_do_not_change_the_maths() -> None:
    old = TrainConfig(epochs=1, out="a").to_dict()
    assert config_differences(old, TrainConfig(epochs=5, out="b", workers=2)) == []
    assert config_differences(old, TrainConfig(lr=0.01)) == ["lr 0.001 -> 0.01"]


def test_model_params_parse_numbers_lists_and_words() -> None:
    parsed = parse_model_params(["channels=8,16,16,32", "dropout=0", "residual=log", "x=true"])
    assert parsed == {"channels": [8, 16, 16, 32], "dropout": 0, "residual": "log", "x": True}
    with pytest.raises(UsdenoiseError, match="key=value"):
        parse_model_params(["channels"])
