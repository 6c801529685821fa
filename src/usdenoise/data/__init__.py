"""Data sets selected by a DATA spec string, paired transforms, and splits by subject.

    dataset = load_dataset("hc18:/data/hc18", size=256)
    sample = dataset[0]   # {"image", "mask", "id", "subject", "spacing_mm", "hc_mm", "source"}

Specs: `phantom` (built-in, `phantom:N` for N images), `hc18:PATH`, `psfhs:PATH`,
`zenodo:PATH`, `folder:PATH`; several joined with `+` (`hc18:PATH+phantom:200`) act as one,
with subjects prefixed by their data set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.specs import split_spec
from usdenoise.data.combined import CombinedDataset
from usdenoise.data.datasets import FileDataset
from usdenoise.data.folder import FolderDataset
from usdenoise.data.hc18 import HC18Dataset
from usdenoise.data.phantom import DEFAULT_COUNT, PhantomDataset, make_phantom
from usdenoise.data.psfhs import PSFHSDataset
from usdenoise.data.zenodo import ZenodoDataset

DATASETS: dict[str, type] = {
    "phantom": PhantomDataset,
    "hc18": HC18Dataset,
    "psfhs": PSFHSDataset,
    "zenodo": ZenodoDataset,
    "folder": FolderDataset,
}

__all__ = ["DATASETS", "FileDataset", "load_dataset", "make_phantom", "collate_samples"]


def load_dataset(spec: str, *, size: int | Sequence[int] | None = None, **options: Any):
    """Open the data set a DATA spec names; `size` (N or (H, W)) resizes every sample.

    `options` go to the data set class (e.g. `seed`, `fan`, `structures` for the phantom,
    `tolerance` for zenodo, `class_names` for folder).
    """
    if "+" in str(spec):

        parts = [load_dataset(part, size=size, **options) for part in str(spec).split("+")]
        return CombinedDataset(parts, str(spec).strip())
    name, arg = split_spec(str(spec), what="data set")
    if name not in DATASETS:
        raise UsdenoiseError(
            f"unknown data set {name!r} in {spec!r} (known: {', '.join(DATASETS)})"
        )
    if name == "phantom":
        count = DEFAULT_COUNT
        if arg:
            try:
                count = int(arg)
            except ValueError:
                raise UsdenoiseError(
                    f"data set {spec!r}: phantom:N needs a whole number of images"
                ) from None
        dataset = PhantomDataset(count, size=size, **options)
        dataset.spec = str(spec).strip()
        return dataset
    if not arg:
        raise UsdenoiseError(f"data set {spec!r}: give a path, e.g. {name}:/data/{name}")
    path = Path(arg).expanduser()
    if not path.exists():
        raise UsdenoiseError(f"data set {spec!r}: {path}: folder not found")
    dataset = DATASETS[name](path, size=size, **options)
    dataset.spec = f"{name}:{arg}"
    return dataset


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader `collate_fn`: stack images ([B,1,H,W]) and masks ([B,H,W]); other keys
    become lists (so None spacing or HC values are fine)."""
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s.get(key) for s in samples]
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        if len(tensors) == len(values):
            shapes = {tuple(v.shape) for v in tensors}
            if len(shapes) != 1:
                raise UsdenoiseError(
                    f"cannot batch {key!r} of different sizes {sorted(shapes)}; load with size="
                )
            out[key] = torch.stack(tensors)
        else:
            out[key] = values
    return out
