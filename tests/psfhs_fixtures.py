"""Write small PSFHS-layout data sets (image_mha/ + label_mha/) with SimpleITK."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def psfhs_labels(h: int = 48, w: int = 64, *, shift: int = 0) -> np.ndarray:
    """Labels 0 background, 1 pubic symphysis (a box), 2 fetal head (an ellipse)."""
    lab = np.zeros((h, w), np.uint8)
    lab[30:40, 10:20] = 1  # pubic symphysis
    yy, xx = np.mgrid[:h, :w]
    lab[((yy - 18) / 12.0) ** 2 + ((xx - 40 - shift) / 16.0) ** 2 <= 1] = 2  # fetal head
    return lab


def write_psfhs_case(root: Path, stem: str, *, h: int = 48, w: int = 64,
                     label: np.ndarray | None = None,
                     spacing: tuple[float, float] | None = (0.2, 0.2)) -> np.ndarray:
    """One image (3 equal planes) and its label; `spacing=None` leaves ElementSpacing out of
    both headers (no pixel size). Returns the gray image."""
    import SimpleITK as sitk

    (root / "image_mha").mkdir(parents=True, exist_ok=True)
    (root / "label_mha").mkdir(parents=True, exist_ok=True)
    gray = np.random.default_rng(len(stem)).integers(0, 255, (h, w), dtype=np.uint8)
    planes = sitk.GetImageFromArray(np.stack([gray] * 3, axis=-1), isVector=True)
    lab = sitk.GetImageFromArray(psfhs_labels(h, w) if label is None else label)
    for image, folder in ((planes, "image_mha"), (lab, "label_mha")):
        path = root / folder / f"{stem}.mha"
        image.SetSpacing(spacing or (1.0, 1.0))
        sitk.WriteImage(image, str(path))
        if spacing is None:
            _drop_header_key(path, b"ElementSpacing")
    return gray


def write_psfhs_root(root: Path, cases: int = 6) -> Path:
    """A PSFHS-layout folder of `cases` cases 00001, 00002, ...; returns `root`."""
    for i in range(cases):
        write_psfhs_case(root, f"{i + 1:05d}")
    return root


def _drop_header_key(path: Path, key: bytes) -> None:
    """Remove one line of a MetaImage header (the data follows `ElementDataFile = LOCAL`)."""
    data = path.read_bytes()
    end = data.index(b"ElementDataFile")
    end = data.index(b"\n", end) + 1
    lines = data[:end].split(b"\n")
    kept = [line for line in lines if not line.startswith(key)]
    path.write_bytes(b"\n".join(kept) + data[end:])
