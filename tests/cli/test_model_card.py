"""docs/model_card.md describes the weights that ship (the `default` every command uses)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # the tomli backport, a dependency on 3.10
    import tomli as tomllib

from usdenoise.denoise.network import default_weights_path

ROOT = Path(__file__).resolve().parents[2]
CARD = ROOT / "docs" / "model_card.md"
WEIGHTS = default_weights_path()


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="no shipped default model in this build")
def test_card_names_the_shipped_weights_and_their_training() -> None:
    card = CARD.read_text(encoding="utf-8")
    sidecar = json.loads(WEIGHTS.with_suffix(".json").read_text())
    # replacing the weights without updating the card fails here
    assert sidecar["sha256"] in card
    assert f"{WEIGHTS.stat().st_size:,}".replace(",", " ") + " bytes" in card
    command = sidecar["meta"]["how_trained"]
    assert command in card
    config_path = re.search(r"--config (\S+)", command).group(1)
    assert f"]({'../' + config_path})" in card
    config = tomllib.loads((ROOT / config_path).read_text())
    trained = sidecar["meta"]["config"]
    for key, value in config.items():  # the config in the card is the one the weights record
        assert trained[key] == value, key
    assert f"epoch {sidecar['meta']['epoch']} of {trained['epochs']}" in card
    images = sidecar["meta"]["data"]["images"]
    assert f"{images['train']} training and {images['val']}" in card


def test_card_covers_use_data_licence_limits_and_scope() -> None:
    card = CARD.read_text(encoding="utf-8")
    for heading in ("## Intended use", "## Training data", "## Training",
                    "## Measured performance and limitations", "## Out of scope"):
        assert heading in card, heading
    assert "Not a medical device" in card and "CC BY 4.0" in card
    assert "doi:10.5281/zenodo.1327317" in card and "2026-12-01" in card


def test_card_is_linked_from_the_readme_and_the_manual() -> None:
    assert "(docs/model_card.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(model_card.md)" in (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
