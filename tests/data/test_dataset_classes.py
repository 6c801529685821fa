"""The data set registry holds each loader's own class (data.datasets, folder, psfhs, ...)."""

from __future__ import annotations

from usdenoise.data import DATASETS
from usdenoise.data.combined import CombinedDataset
from usdenoise.data.datasets import FileDataset
from usdenoise.data.folder import FolderDataset
from usdenoise.data.hc18 import HC18Dataset
from usdenoise.data.phantom import PhantomDataset
from usdenoise.data.psfhs import PSFHSDataset
from usdenoise.data.zenodo import ZenodoDataset


def test_registry_entries_and_file_based_loaders() -> None:
    assert DATASETS["folder"] is FolderDataset and DATASETS["hc18"] is HC18Dataset
    assert DATASETS["psfhs"] is PSFHSDataset and DATASETS["zenodo"] is ZenodoDataset
    assert DATASETS["phantom"] is PhantomDataset
    for cls in (FolderDataset, HC18Dataset, PSFHSDataset, ZenodoDataset):
        assert issubclass(cls, FileDataset)
    assert CombinedDataset.__name__ == "CombinedDataset"
