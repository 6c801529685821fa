"""DATA spec strings, registry, collate."""

from __future__ import annotations

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data import DATASETS, collate_samples, load_dataset


def test_registry_names_and_summaries():
    assert set(DATASETS) == {"phantom", "hc18", "psfhs", "zenodo", "folder"}
    assert all(cls.summary for cls in DATASETS.values())


def test_phantom_specs():
    assert len(load_dataset("phantom")) == 100
    ds = load_dataset("phantom:7", size=(40, 50), structures=True, seed=2)
    assert len(ds) == 7 and ds.spec == "phantom:7" and ds.num_classes == 4
    s = ds[0]
    assert s["image"].shape == (1, 40, 50) and s["spacing_mm"] == (3.0, 3.0)


@pytest.mark.parametrize("spec,match", [
    ("mnist:/x", "unknown data set 'mnist'"),
    ("phantom:many", "whole number"),
    ("phantom:0", "at least 1"),
    ("hc18", "give a path"),
    ("hc18:/no/such/place", "/no/such/place: folder not found"),
    ("", "empty data set"),
])
def test_bad_specs(spec, match):
    with pytest.raises(UsdenoiseError, match=match) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)


def test_collate_with_none_values():
    ds = load_dataset("phantom:3", size=32)
    batch = collate_samples([ds[0], ds[1]])
    assert batch["image"].shape == (2, 1, 32, 32) and batch["mask"].shape == (2, 32, 32)
    assert batch["id"] == ds.ids[:2]
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_samples)
    assert next(iter(loader))["image"].shape == (3, 1, 32, 32)
    with pytest.raises(UsdenoiseError, match="different sizes"):
        collate_samples([{"image": torch.zeros(1, 2, 2)}, {"image": torch.zeros(1, 3, 3)}])
