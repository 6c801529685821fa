"""What every image codec shares: file checks, header info, and pixel scaling."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from usdenoise.core.errors import UsdenoiseError

PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
METAIMAGE_SUFFIXES = (".mha", ".mhd")
IMAGE_SUFFIXES = (*PILLOW_SUFFIXES, ".npy", *DICOM_SUFFIXES, *METAIMAGE_SUFFIXES)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's convert("L") and OpenCV


@dataclass(frozen=True)
class ImageInfo:
    """What a file holds, read from its header where the format allows.

    ``channels`` counts stored samples per pixel including alpha (a palette image counts
    as the 3 or 4 channels of its colour table); ``bit_depth`` is the stored bits per sample
    (32 for float data); ``spacing_mm`` is (row, column) pixel spacing or None if unknown.
    """

    format: str
    bit_depth: int
    height: int
    width: int
    channels: int
    frames: int
    spacing_mm: tuple[float, float] | None = None


@dataclass
class Decoded:
    """Pixels of a file as stored: ``pixels[F, H, W, C]``, divided by ``full_scale`` -> [0, 1]."""

    pixels: np.ndarray
    full_scale: float
    info: ImageInfo


def check_input_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path, or raise a UsdenoiseError if it is not a readable file."""
    path = Path(path)
    if not path.exists():
        raise UsdenoiseError(f"{path}: file not found")
    if path.is_dir():
        raise UsdenoiseError(f"{path}: is a folder, expected an image file")
    if not path.is_file():
        raise UsdenoiseError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise UsdenoiseError(f"{path}: file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise UsdenoiseError(f"{path}: permission denied")
    return path


def is_dicom(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(132)[128:] == b"DICM"


def check_float(a: np.ndarray, path: Path) -> None:
    if a.size and not np.isfinite(a).all():
        bad = int(np.size(a) - np.isfinite(a).sum())
        raise UsdenoiseError(f"{path}: contains {bad} NaN/Inf values")


def full_scale(a: np.ndarray, path: Path) -> tuple[np.ndarray, float]:
    """Integers scale by their dtype's maximum; floats must be finite and in [0, 1]."""
    if a.dtype.kind == "b":
        return a.astype(np.uint8), 1.0
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
        check_float(a, path)
        if a.size and (a.min() < 0 or a.max() > 1):
            raise UsdenoiseError(
                f"{path}: float values span [{a.min():.4g}, {a.max():.4g}], "
                "outside [0, 1]; scale them first"
            )
        return a, 1.0
    if a.dtype.kind not in "iu":
        raise UsdenoiseError(f"{path}: unsupported pixel type {a.dtype}")
    if a.dtype.kind == "i" and a.size and a.min() < 0:
        raise UsdenoiseError(f"{path}: integer image has negative values")
    return a, float(np.iinfo(a.dtype).max)


def quantize(a: np.ndarray, bit_depth: int) -> np.ndarray:
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(a * np.iinfo(dtype).max).astype(dtype)
