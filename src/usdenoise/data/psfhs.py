"""PSFHS: pubic symphysis and fetal head segmentation (Chen et al., Sci Data 2024).

Layout:

    PATH/image_mha/NNNNN.mha     ultrasound image (stored as 3 equal planes; read as gray)
    PATH/label_mha/NNNNN.mha     labels: 0 background, 1 pubic symphysis, 2 fetal head

Images pair with labels by file stem. The file names carry no subject, so each image is its
own subject unless `PATH/subjects.csv` (header `id,subject`) groups them. Pixel spacing
comes from the MetaImage header when it has one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data.datasets import FileDataset, Item, read_subjects_csv, require_folder
from usdenoise.io import image_info, read_mask

SUFFIXES = (".mha", ".mhd")


class PSFHSDataset(FileDataset):
    """PSFHS pubic symphysis / fetal head set: psfhs:PATH (image_mha/ + label_mha/)."""

    name = "psfhs"
    summary = "PSFHS pubic symphysis + fetal head set: psfhs:PATH (image_mha/, label_mha/)"
    class_names = ("background", "pubic_symphysis", "fetal_head")

    def __init__(self, root: str | os.PathLike, *, size: int | Sequence[int] | None = None):
        super().__init__(root, size=size)
        root_dir = require_folder(root, what="psfhs")
        image_dir = require_folder(root_dir / "image_mha", what="psfhs")
        label_dir = require_folder(root_dir / "label_mha", what="psfhs")
        images = sorted(p for p in image_dir.iterdir()
                        if p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
        if not images:
            raise UsdenoiseError(f"psfhs: {image_dir}: no .mha/.mhd images found")
        labels = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() in SUFFIXES}
        ids = [p.stem for p in images]
        subjects_csv = root_dir / "subjects.csv"
        subjects = read_subjects_csv(subjects_csv, ids) if subjects_csv.is_file() else {}
        for path in images:
            if path.stem not in labels:
                raise UsdenoiseError(f"{path}: no label {path.stem}.mha in {label_dir}")
            self.items.append(Item(id=path.stem, subject=subjects.get(path.stem, path.stem),
                                   image=path, mask=labels[path.stem]))

    def load_mask(self, item: Item) -> torch.Tensor | None:
        assert item.mask is not None  # every item listed in __init__ has one
        mask = read_mask(item.mask)
        if mask.ndim == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.numel() and int(mask.max()) >= self.num_classes:
            raise UsdenoiseError(
                f"{item.mask}: label {int(mask.max())} is not a PSFHS class "
                "(0 background, 1 pubic symphysis, 2 fetal head)"
            )
        return mask

    def extra(self, item: Item, sample: dict[str, Any]) -> None:

        spacing = image_info(item.image).spacing_mm
        sample["spacing_mm"] = tuple(float(v) for v in spacing) if spacing else None
