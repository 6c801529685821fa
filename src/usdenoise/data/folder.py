"""Any folder of images: folder:PATH, with optional masks and subject groups.

    PATH/**/<stem>.<ext>        images (every supported format, searched recursively)
    PATH/masks/**/<stem>.<ext>  optional integer label maps with the same stems
    PATH/subjects.csv           optional, header `id,subject`: groups images by subject

Ids are file stems (they must be unique, since masks pair by stem). Without
`subjects.csv` every image is its own subject. When `masks/` exists every image needs a
mask; binary masks stored as 0/255 become 0/1. Labels must be below the number of
`class_names` (default background, head). Pixel spacing comes from the file header when
the format has one (DICOM, MetaImage, TIFF).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data.datasets import (
    FileDataset,
    Item,
    list_images,
    read_subjects_csv,
    require_folder,
)
from usdenoise.io import image_info, read_mask


class FolderDataset(FileDataset):
    """Any folder of images: folder:PATH (optional masks/ with the same stems, subjects.csv)."""

    name = "folder"
    summary = "any images: folder:PATH (recursive; optional masks/ and subjects.csv)"

    def __init__(self, root: str | os.PathLike, *, size: int | Sequence[int] | None = None,
                 class_names: Sequence[str] = ("background", "head")):
        super().__init__(root, size=size)
        root_dir = require_folder(root, what="folder")
        self.class_names = tuple(class_names)
        mask_dir = root_dir / "masks"
        images = list_images(root_dir, exclude=[mask_dir])
        if not images:
            raise UsdenoiseError(f"folder: {root_dir}: no supported images found")
        seen: dict[str, os.PathLike] = {}
        for path in images:
            if path.stem in seen:
                raise UsdenoiseError(
                    f"folder: {path} and {seen[path.stem]} have the same name {path.stem!r}"
                )
            seen[path.stem] = path
        masks: dict[str, Path] = {}
        if mask_dir.is_dir():
            for path in list_images(mask_dir):
                if path.stem in masks:
                    raise UsdenoiseError(f"folder: {path}: two masks named {path.stem!r}")
                masks[path.stem] = path
        ids = [p.stem for p in images]
        subjects_csv = root_dir / "subjects.csv"
        subjects = read_subjects_csv(subjects_csv, ids) if subjects_csv.is_file() else {}
        for path in images:
            mask = masks.get(path.stem)
            if mask_dir.is_dir() and mask is None:
                raise UsdenoiseError(f"{path}: no mask named {path.stem}.* in {mask_dir}")
            self.items.append(Item(id=path.stem, subject=subjects.get(path.stem, path.stem),
                                   image=path, mask=mask))

    def load_mask(self, item: Item) -> torch.Tensor | None:

        if item.mask is None:
            return None
        mask = read_mask(item.mask)
        if mask.numel() and int(mask.max()) == 255 and bool(((mask == 0) | (mask == 255)).all()):
            mask = mask // 255
        if mask.numel() and int(mask.max()) >= self.num_classes:
            raise UsdenoiseError(
                f"{item.mask}: label {int(mask.max())} but only {self.num_classes} classes "
                f"({', '.join(self.class_names)})"
            )
        return mask

    def extra(self, item: Item, sample: dict[str, Any]) -> None:
        if item.image.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".npy"):
            return  # these formats carry no pixel spacing

        spacing = image_info(item.image).spacing_mm
        sample["spacing_mm"] = tuple(float(v) for v in spacing) if spacing else None
