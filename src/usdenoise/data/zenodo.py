"""The Zenodo fetal-head segmentation set with colour-coded masks (brain, CSP, LV).

Masks are RGB images (959x661 in the original release): brain (255,0,0), cavum septi
pellucidi (0,255,0), lateral ventricles (0,0,255) on a black background. Each mask pixel
gets the class of the nearest of these colours; a pixel farther than `tolerance` (Euclidean
RGB distance, default 100) from every colour "matches no class" (JPEG blocks, blending from
an interpolating resize): it still gets the nearest class, is counted in the sample's
`unmatched_pixels` and in `dataset.unmatched_pixels` (per id, in this process), and a
warning names the mask file.

Accepted layouts (folder names case-insensitive; PATH or one folder level below it):

    PATH/images/<stem>.<ext>  +  PATH/masks/<stem>[suffix].<ext>
        image folder: images, image, imgs, img
        mask folder:  masks, mask, labels, label, annotations, annotation, ground_truth, gt
    PATH/<stem>.<ext>  +  PATH/<stem><suffix>.<ext>       (flat folder)
        suffix: _mask, _Mask, _annotation, _Annotation, _label, _seg, _gt (or none
        in a separate mask folder)

Images and masks may be PNG, JPEG, BMP or TIFF. Every image needs a mask. Each image is
its own subject unless `PATH/subjects.csv` (header `id,subject`) groups them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data.datasets import (
    FileDataset,
    Item,
    list_images,
    read_subjects_csv,
    require_folder,
)
from usdenoise.io import read_raw

CLASS_COLOURS = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255))
CLASS_NAMES = ("background", "brain", "csp", "lv")
IMAGE_DIRS = ("images", "image", "imgs", "img")
MASK_DIRS = ("masks", "mask", "labels", "label", "annotations", "annotation",
             "ground_truth", "gt")
MASK_SUFFIXES = ("_mask", "_annotation", "_label", "_seg", "_gt")
DEFAULT_TOLERANCE = 100.0


def colour_mask_to_classes(rgb: np.ndarray, *, tolerance: float = DEFAULT_TOLERANCE,
                           colours: Sequence[Sequence[int]] = CLASS_COLOURS
                           ) -> tuple[np.ndarray, int]:
    """RGB mask [H,W,3] (or gray [H,W]) -> (class map [H,W] int64, pixels matching no class).

    Each pixel takes the class of the nearest colour; pixels farther than `tolerance`
    from every colour are counted as unmatched (and still get the nearest class).
    """
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] < 3:
        raise UsdenoiseError(f"colour mask has shape {a.shape}, expected [H, W, 3]")
    a = a[..., :3]
    if a.dtype == np.uint16:
        a = a / 257.0
    elif a.dtype.kind == "f" and a.size and float(a.max()) <= 1.0:
        a = a * 255.0
    pixels = a.reshape(-1, 3).astype(np.float32)
    palette = np.asarray(colours, dtype=np.float32)
    # squared distances via |x|^2 - 2 x.c + |c|^2 (one small matmul, no [N, K, 3] temporary)
    d2 = ((pixels**2).sum(1, keepdims=True) - 2.0 * pixels @ palette.T
          + (palette**2).sum(1)[None, :])
    labels = d2.argmin(1)
    nearest = np.take_along_axis(d2, labels[:, None], 1)[:, 0]
    unmatched = int((nearest > tolerance**2).sum())
    return labels.reshape(a.shape[:2]).astype(np.int64), unmatched


def _find_dir(root: Path, names: Sequence[str]) -> Path | None:
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() in names:
            return child
    return None


def _strip_mask_suffix(stem: str) -> str:
    lower = stem.lower()
    for suffix in MASK_SUFFIXES:
        if lower.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _pairs(root: Path) -> list[tuple[Path, Path | None]]:
    """(image, mask) pairs in one of the accepted layouts; empty when none is found."""
    candidates = [root] + sorted(c for c in root.iterdir() if c.is_dir())
    for base in candidates:
        image_dir, mask_dir = _find_dir(base, IMAGE_DIRS), _find_dir(base, MASK_DIRS)
        if image_dir is not None and mask_dir is not None:
            masks = {_strip_mask_suffix(p.stem): p for p in list_images(mask_dir)}
            return [(p, masks.get(p.stem)) for p in list_images(image_dir)]
    files = list_images(root, recursive=False)
    masks = {_strip_mask_suffix(p.stem): p for p in files
             if _strip_mask_suffix(p.stem) != p.stem}
    return [(p, masks.get(p.stem)) for p in files if _strip_mask_suffix(p.stem) == p.stem]


class ZenodoDataset(FileDataset):
    """Zenodo fetal-head set with RGB masks: zenodo:PATH (brain, CSP, LV)."""

    name = "zenodo"
    summary = "Zenodo fetal-head set, RGB masks brain/CSP/LV: zenodo:PATH (images/ + masks/)"
    class_names = CLASS_NAMES

    def __init__(self, root: str | os.PathLike, *, size: int | Sequence[int] | None = None,
                 tolerance: float = DEFAULT_TOLERANCE):
        super().__init__(root, size=size)
        root_dir = require_folder(root, what="zenodo")
        if not tolerance > 0:
            raise UsdenoiseError(f"zenodo: tolerance {tolerance!r} must be positive")
        self.tolerance = float(tolerance)
        self.unmatched_pixels: dict[str, int] = {}
        pairs = _pairs(root_dir)
        if not pairs:
            raise UsdenoiseError(
                f"zenodo: {root_dir}: no images found (expected images/ + masks/ folders, "
                "or <stem>.png with <stem>_mask.png)"
            )
        ids = [image.stem for image, _ in pairs]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise UsdenoiseError(f"zenodo: {root_dir}: two images are named {dup!r}")
        subjects_csv = root_dir / "subjects.csv"
        subjects = read_subjects_csv(subjects_csv, ids) if subjects_csv.is_file() else {}
        for image, mask in pairs:
            if mask is None:
                raise UsdenoiseError(f"{image}: no mask with the stem {image.stem!r}")
            self.items.append(Item(id=image.stem, subject=subjects.get(image.stem, image.stem),
                                   image=image, mask=mask))

    @property
    def total_unmatched_pixels(self) -> int:
        return sum(self.unmatched_pixels.values())

    def load_mask(self, item: Item) -> torch.Tensor | None:
        assert item.mask is not None  # every item listed in __init__ has one
        labels, unmatched = colour_mask_to_classes(read_raw(item.mask), tolerance=self.tolerance)
        self.unmatched_pixels[item.id] = unmatched
        if unmatched:
            warnings.warn(
                f"{item.mask}: {unmatched} pixels match no class colour within "
                f"{self.tolerance:g}; given the nearest class", stacklevel=3)
        return torch.from_numpy(labels)

    def extra(self, item: Item, sample: dict[str, Any]) -> None:
        sample["unmatched_pixels"] = self.unmatched_pixels.get(item.id, 0)
