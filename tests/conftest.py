"""Shared fixtures. Tests that need the real HC18 images skip cleanly without ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
HC18 = Path(os.environ.get("USDENOISE_HC18", ROOT.parent / "shared" / "data" / "hc18"))

# tests are small; one thread avoids oversubscription on 2-core CI machines
torch.set_num_threads(1)


@pytest.fixture
def hc18_root() -> Path:
    if not (HC18 / "training_set_pixel_size_and_HC.csv").is_file():
        pytest.skip(f"HC18 data not found at {HC18}")
    return HC18
