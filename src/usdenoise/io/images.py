"""Read and write ultrasound images as float32 tensors in [0, 1].

Readers return ``[F, C, H, W]`` (``read_frames``) or ``[C, H, W]`` (``read_image``).
Integer pixels are divided by the full scale of their stored bit depth (255 for 8 bit,
65535 for 16 bit); float pixels must be finite and already in [0, 1]. Alpha channels are
dropped. RGB whose three planes are equal becomes one channel; other RGB becomes gray with
the ITU-R BT.601 luma weights (0.299, 0.587, 0.114) and a warning, unless ``gray=False``.
Every write goes to a temporary name in the target folder and is renamed when complete.
Every problem with a file is a one-line :class:`UsdenoiseError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError, one_line
from usdenoise.core.files import atomic_write
from usdenoise.io.common import (
    DICOM_SUFFIXES,
    LUMA_WEIGHTS,
    METAIMAGE_SUFFIXES,
    PILLOW_SUFFIXES,
    Decoded,
    ImageInfo,
    check_float,
    check_input_file,
    is_dicom,
)
from usdenoise.io.dicom import read_dicom
from usdenoise.io.metaimage import read_metaimage, save_metaimage, write_metaimage
from usdenoise.io.npy import read_npy, write_npy
from usdenoise.io.pillow import PIL_FORMAT, read_pillow, save_pillow_or_cv, write_pillow

# ---------------------------------------------------------------------------- dispatch

def suffix_key(path: Path, table: dict) -> str:
    suffix = path.suffix.lower()
    if suffix == "" and table is READERS and path.is_file() and is_dicom(path):
        return ".dcm"  # DICOM files often have no suffix; the DICM marker identifies them
    if suffix not in table:
        known = ", ".join(sorted(table))
        raise UsdenoiseError(f"{path}: unsupported format '{path.suffix}' (supported: {known})")
    return suffix


Reader = Callable[..., Decoded]
READERS: dict[str, Reader] = {
    **dict.fromkeys(PILLOW_SUFFIXES, read_pillow),
    ".npy": read_npy,
    **dict.fromkeys(DICOM_SUFFIXES, read_dicom),
    **dict.fromkeys(METAIMAGE_SUFFIXES, read_metaimage),
}


def decode(path: str | os.PathLike, *, raw: bool = False, header_only: bool = False) -> Decoded:
    """Decode a file to ``Decoded(pixels[F,H,W,C], full_scale, info)`` (library internal)."""
    path = check_input_file(path)
    reader = READERS[suffix_key(path, READERS)]
    return reader(path, raw=raw, header_only=header_only)


def _equal_planes(a: np.ndarray) -> bool:
    return bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]))


def to_tensor(decoded: Decoded, path: Path, *, gray: bool = True) -> torch.Tensor:
    """``Decoded`` -> float32 ``[F, C, H, W]`` in [0, 1] (alpha dropped, RGB -> gray)."""
    a = decoded.pixels
    if a.shape[-1] in (2, 4):
        a = a[..., :-1]
    if a.shape[-1] == 3 and _equal_planes(a):
        a = a[..., :1]
    x = a.astype(np.float32)
    if decoded.full_scale != 1.0:
        x /= np.float32(decoded.full_scale)
    if x.shape[-1] == 3 and gray:
        warnings.warn(f"{path}: colour image converted to gray (BT.601 luma)", stacklevel=3)
        x = (x.astype(np.float64) @ np.array(LUMA_WEIGHTS))[..., None].astype(np.float32)
    x = np.clip(x, 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


# ---------------------------------------------------------------------------- public readers


def read_frames(path: str | os.PathLike, *, gray: bool = True) -> torch.Tensor:
    """All frames of an image file as float32 ``[F, C, H, W]`` in [0, 1].

    C is 1 for gray files, for RGB with equal planes, and (with a warning) for other colour
    files unless ``gray=False``, which keeps 3 channels.
    """
    return to_tensor(decode(path), Path(path), gray=gray)


def read_image(path: str | os.PathLike, *, gray: bool = True) -> torch.Tensor:
    """A single-frame image as float32 ``[C, H, W]`` in [0, 1]; several frames are an error."""
    frames = read_frames(path, gray=gray)
    if frames.shape[0] != 1:
        raise UsdenoiseError(f"{path}: has {frames.shape[0]} frames; use read_frames")
    return frames[0]


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """Stored pixel values, native dtype, no scaling: ``[H, W]`` or ``[H, W, C]``.

    Meant for masks and label maps: palette images give their indices, alpha is dropped,
    ``.npy`` arrays come back unchanged. Files with several frames are an error.
    """
    decoded = decode(path, raw=True)
    a = decoded.pixels
    if Path(path).suffix.lower() == ".npy":
        return a
    if a.shape[0] != 1:
        raise UsdenoiseError(f"{path}: has {a.shape[0]} frames, expected one")
    a = a[0]
    if a.shape[-1] in (2, 4):
        a = a[..., :-1]
    return a[..., 0] if a.shape[-1] == 1 else a


def read_mask(path: str | os.PathLike) -> torch.Tensor:
    """An integer class map ``[H, W]`` int64, values as stored (RGB masks with equal planes
    allowed; colour-coded masks need a colour-to-class mapping first)."""
    a = read_raw(path)
    if a.ndim == 3 and a.shape[-1] == 3 and _equal_planes(a):
        a = a[..., 0]
    if a.ndim != 2:
        raise UsdenoiseError(
            f"{path}: mask has shape {tuple(a.shape)}, expected [H, W] class labels "
            "(colour masks must be mapped to classes first)"
        )
    if a.dtype.kind == "f":
        if a.size and not np.array_equal(a, np.round(a)):
            raise UsdenoiseError(f"{path}: mask has non-integer values")
    elif a.dtype.kind not in "biu":
        raise UsdenoiseError(f"{path}: mask dtype {a.dtype} is not integer")
    if a.size and a.min() < 0:
        raise UsdenoiseError(f"{path}: mask has negative labels")
    return torch.from_numpy(a.astype(np.int64))


def image_info(path: str | os.PathLike) -> ImageInfo:
    """Format, bit depth, size, channels, frames and pixel spacing, from the header."""
    return decode(path, header_only=True).info


# ---------------------------------------------------------------------------- writing


def _as_numpy(x, path: Path, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise UsdenoiseError(f"{path}: {what} has unsupported dtype {a.dtype}")
    return a


def _image_hwc(x, path: Path) -> np.ndarray:
    a = _as_numpy(x, path, "image")
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise UsdenoiseError(
            f"{path}: image to write has shape {tuple(a.shape)}, expected [C,H,W] with C 1 or 3"
        )
    a = a.astype(np.float32)
    check_float(a, path)
    return np.clip(np.moveaxis(a, 0, -1), 0.0, 1.0)


def _write_dicom_refused(tmp: Path, a, bit_depth: int, path: Path, spacing_mm) -> None:
    raise UsdenoiseError(f"{path}: DICOM needs a template for its tags; use write_dicom")


Writer = Callable[..., None]
WRITERS: dict[str, Writer] = {
    **dict.fromkeys(PILLOW_SUFFIXES, write_pillow),
    ".npy": write_npy,
    **dict.fromkeys(DICOM_SUFFIXES, _write_dicom_refused),
    **dict.fromkeys(METAIMAGE_SUFFIXES, write_metaimage),
}


def write_image(
    path: str | os.PathLike,
    x,
    *,
    bit_depth: int = 8,
    spacing_mm: tuple[float, float] | None = None,
) -> Path:
    """Write ``x`` (``[C, H, W]`` or ``[H, W]``, values in [0, 1]) atomically.

    The format comes from the suffix. ``bit_depth`` is 8 or 16 (16 for PNG/TIFF/MHA);
    ``.npy`` always stores float32 ``[C, H, W]``. Values outside [0, 1] are clipped,
    NaN/Inf is an error. ``spacing_mm`` (row, column) is stored in ``.mha`` files and
    ignored by formats without a spacing field. Returns ``path``.
    """
    path = Path(path)
    writer = WRITERS[suffix_key(path, WRITERS)]
    if bit_depth not in (8, 16):
        raise UsdenoiseError(f"{path}: bit_depth must be 8 or 16, got {bit_depth}")
    a = _image_hwc(x, path)
    with atomic_write(path) as tmp:
        try:
            writer(tmp, a, bit_depth, path, spacing_mm)
        except (UsdenoiseError, OSError):
            raise
        except Exception as exc:
            raise UsdenoiseError(f"{path}: cannot write image ({one_line(exc)})") from exc
    return path


_MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".npy", ".mha")


def write_mask(path: str | os.PathLike, mask) -> Path:
    """Write an integer class map ``[H, W]`` losslessly (uint8, or uint16 above 255).

    PNG, TIFF, BMP (labels up to 255), ``.npy`` and ``.mha``; JPEG is refused (lossy).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _MASK_SUFFIXES:
        raise UsdenoiseError(
            f"{path}: cannot store a mask as '{path.suffix}' "
            f"(lossless: {', '.join(_MASK_SUFFIXES)})"
        )
    a = _as_numpy(mask, path, "mask")
    if a.ndim != 2:
        raise UsdenoiseError(f"{path}: mask to write has shape {tuple(a.shape)}, expected [H, W]")
    if a.dtype.kind == "f" and not (np.isfinite(a).all() and np.array_equal(a, np.round(a))):
        raise UsdenoiseError(f"{path}: mask to write has non-integer values")
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if lo < 0 or hi > 65535 or (suffix == ".bmp" and hi > 255):
        raise UsdenoiseError(f"{path}: mask labels {lo}..{hi} do not fit this format")
    q = a.astype(np.uint8 if hi <= 255 else np.uint16)
    with atomic_write(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, q)
        elif suffix == ".mha":
            save_metaimage(tmp, q[..., None], None)
        else:
            save_pillow_or_cv(tmp, q[..., None], PIL_FORMAT[suffix])
    return path
