"""What every file-backed data set shares: listing, subjects, size checks and resizing.

A data set is indexed like a list and returns sample dicts:
`{"image": Tensor[1,H,W] float32 in [0,1], "mask": Tensor[H,W] int64 (when annotated),
"id": str, "subject": str, "spacing_mm": (row_mm, col_mm) or None, "hc_mm": float or None,
"source": str (the image file)}`. `.ids` and `.subjects` are lists built when the data set
is opened, without reading any image, so splitting by subject is instant.
With `size` (N or (H, W)) every sample is resized: image by area averaging (shrinking) or
bilinear interpolation (enlarging), mask by nearest neighbour only, and `spacing_mm` is
scaled so that physical lengths stay right.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data.transforms import as_size, resize_sample
from usdenoise.io import IMAGE_SUFFIXES, read_image, read_mask


@dataclass
class Item:
    """One image of a data set, as listed (nothing read yet)."""

    id: str
    subject: str
    image: Path
    mask: Path | None = None
    spacing_mm: tuple[float, float] | None = None
    hc_mm: float | None = None


class FileDataset(torch.utils.data.Dataset):
    """Base class: subclasses fill `self.items` in `__init__` and implement `load_mask`."""

    name = "files"
    summary = ""
    class_names: tuple[str, ...] = ("background", "head")

    def __init__(self, root: str | os.PathLike, *, size: int | Sequence[int] | None = None):
        self.root = Path(root)
        self.size = as_size(size) if size is not None else None
        self.spec = f"{self.name}:{root}"
        self.items: list[Item] = []

    # ---- listing -------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    @property
    def subjects(self) -> list[str]:
        return [item.subject for item in self.items]

    @property
    def has_masks(self) -> bool:
        return any(item.mask is not None for item in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {len(self)} images)"

    # ---- loading -------------------------------------------------------------------
    def load_image(self, item: Item) -> torch.Tensor:

        image = read_image(item.image)
        if image.shape[0] != 1:  # read_image(gray=True) gives one channel; keep the contract
            image = image.mean(0, keepdim=True)
        return image

    def load_mask(self, item: Item) -> torch.Tensor | None:

        return None if item.mask is None else read_mask(item.mask)

    def extra(self, item: Item, sample: dict[str, Any]) -> None:
        """Hook for subclasses to add keys (e.g. spacing from the file header)."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        image = self.load_image(item)
        sample: dict[str, Any] = {
            "image": image, "id": item.id, "subject": item.subject,
            "spacing_mm": item.spacing_mm, "hc_mm": item.hc_mm, "source": str(item.image),
        }
        mask = self.load_mask(item)
        if mask is not None:
            if tuple(mask.shape) != tuple(image.shape[-2:]):
                raise UsdenoiseError(
                    f"{item.mask}: mask is {mask.shape[1]}x{mask.shape[0]}, but image "
                    f"{item.image.name} is {image.shape[-1]}x{image.shape[-2]} (width x height)"
                )
            sample["mask"] = mask
        self.extra(item, sample)
        if self.size is not None:
            sample = resize_sample(sample, self.size)
        return sample


# ---- helpers shared by the data set modules ------------------------------------------

def require_folder(path: str | os.PathLike, *, what: str) -> Path:
    """`path` as a Path, or a UsdenoiseError naming it when it is missing or not a folder."""
    path = Path(path)
    if not path.exists():
        raise UsdenoiseError(f"{what}: {path}: folder not found")
    if not path.is_dir():
        raise UsdenoiseError(f"{what}: {path}: not a folder")
    return path


def image_suffixes() -> tuple[str, ...]:

    return tuple(s.lower() for s in IMAGE_SUFFIXES)


def list_images(folder: Path, *, recursive: bool = True,
                exclude: Sequence[Path] = ()) -> list[Path]:
    """Supported image files under `folder`, sorted; hidden files and `exclude` folders skipped."""
    suffixes = set(image_suffixes())
    excluded = [e.resolve() for e in exclude]
    pattern = "**/*" if recursive else "*"
    out = []
    for path in folder.glob(pattern):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in suffixes:
            continue
        resolved = path.resolve()
        if any(resolved.is_relative_to(e) for e in excluded):
            continue
        out.append(path)
    return sorted(out)


def read_subjects_csv(path: Path, ids: Sequence[str]) -> dict[str, str]:
    """`subjects.csv` with header `id,subject` -> {id: subject}; every id must be listed."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsdenoiseError(f"{path}: cannot read ({exc})") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["id", "subject"]:
        raise UsdenoiseError(f"{path}: expected a header line 'id,subject'")
    mapping: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise UsdenoiseError(f"{path}: line {line}: expected 'id,subject'")
        mapping[row[0].strip()] = row[1].strip()
    missing = [i for i in ids if i not in mapping]
    if missing:
        raise UsdenoiseError(
            f"{path}: no subject for image {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    return mapping
