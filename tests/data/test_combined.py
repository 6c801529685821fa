from __future__ import annotations

import pytest

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data import load_dataset
from usdenoise.data.splits import split_by_subject


def test_plus_joins_data_sets_and_prefixes_subjects() -> None:
    combined = load_dataset("phantom:3+phantom:2", size=32)
    assert len(combined) == 5
    assert combined.subjects[0].startswith("phantom/")
    sample = combined[4]
    assert sample["image"].shape == (1, 32, 32)
    assert sample["id"] == combined.ids[4]
    splits = split_by_subject(combined.subjects, seed=0)
    assert sorted(i for part in splits.values() for i in part) == list(range(5))


def test_bad_part_names_the_part() -> None:
    with pytest.raises(UsdenoiseError, match="nope"):
        load_dataset("phantom:2+nope:x")


def test_real_hc18_plus_phantom(hc18_root) -> None:
    combined = load_dataset(f"hc18:{hc18_root}+phantom:4", size=64)
    assert len(combined) == 713 + 4
    assert combined[len(combined) - 1]["subject"].startswith("phantom/")
    assert combined[0]["subject"].startswith("hc18/")


def test_joined_split_keeps_each_parts_own_split() -> None:
    """Training on `a+b` must not see the test images of `a` evaluated alone."""
    from usdenoise.data.splits import split_dataset

    alone = split_dataset(load_dataset("phantom:20"), seed=3)
    joined = split_dataset(load_dataset("phantom:20+phantom:9"), seed=3)
    for name, indices in alone.items():
        assert [i for i in joined[name] if i < 20] == indices
