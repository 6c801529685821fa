"""Files written by the version before the layout move load and reproduce after it.

tests/fixtures/pre_layout holds a checkpoint, its splits.json and reference figures, all
written by the previous main: a 1-epoch DiConvAE trained on `phantom:12` at 64 px, seed 3.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from usdenoise.core.seeding import SeedPurpose, derive_seed
from usdenoise.data import load_dataset
from usdenoise.data.splits import load_splits, split_dataset
from usdenoise.denoise import make_denoiser
from usdenoise.noise import make_noise

FIXTURES = Path(__file__).parent / "fixtures" / "pre_layout"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())


def test_seeds_keep_their_values() -> None:
    assert derive_seed(3, SeedPurpose.SEGMENT_INPUT_NOISE, 0) == REFERENCE["derive_seed_3_5_0"]
    assert derive_seed(0, SeedPurpose.VALIDATION_CROP) == REFERENCE["derive_seed_0_1"]


def test_splits_reproduce_and_load() -> None:
    dataset = load_dataset("phantom:12", size=64)
    split = split_dataset(dataset, seed=3)
    assert split == REFERENCE["split_phantom12_seed3"]
    loaded = load_splits(FIXTURES / "splits.json", dataset=dataset)
    assert loaded == {part: list(ix) for part, ix in split.items()}


def test_checkpoint_loads_and_denoises_the_same() -> None:
    image = load_dataset("phantom:12", size=64)[0]["image"][None].float()
    generator = torch.Generator().manual_seed(REFERENCE["derive_seed_3_5_0"])
    noisy = make_noise("rayleigh:0.25")(image, generator=generator)
    assert abs(float(noisy.double().sum()) - REFERENCE["noisy_sum"]) < 1e-6 * noisy.numel()
    out = make_denoiser("network", checkpoint=str(FIXTURES / "model.safetensors"),
                        device="cpu").denoise(noisy)
    # same weights, same arithmetic: agreement to float32 rounding (tolerance 1e-5 per pixel)
    assert abs(float(out.double().sum()) - REFERENCE["denoised_sum"]) < 1e-5 * out.numel()
    assert torch.allclose(out.flatten()[:8], torch.tensor(REFERENCE["denoised_first"]),
                          atol=1e-5)
