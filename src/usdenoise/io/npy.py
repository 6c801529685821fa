"""NumPy `.npy` arrays (HxW, HxWxC, CxHxW, FxHxWxC): integers by their dtype range, floats in
[0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usdenoise.core.errors import UsdenoiseError, one_line
from usdenoise.core.limits import check_array_shape
from usdenoise.io.common import (
    Decoded,
    ImageInfo,
    check_float,
    full_scale,
)


def npy_to_fhwc(a: np.ndarray, path: Path) -> np.ndarray:
    if a.ndim == 2:
        return a[None, :, :, None]
    if a.ndim == 3 and a.shape[0] in (1, 3, 4):
        return np.moveaxis(a, 0, -1)[None]
    if a.ndim == 4 and a.shape[1] in (1, 3, 4):
        return np.moveaxis(a, 1, -1)
    raise UsdenoiseError(
        f"{path}: array of shape {tuple(a.shape)} is not an image; expected [H,W], [C,H,W] "
        "or [F,C,H,W] with C in 1, 3, 4"
    )


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a `.npy` header, without reading the data; the pixel limit and
    the dtype are checked here, and the declared size against the file's size."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except Exception as exc:  # numpy raises ValueError, EOFError, SyntaxError ...
        raise UsdenoiseError(f"{path}: cannot read .npy file ({one_line(exc)})") from exc
    if dtype.hasobject or dtype.kind not in "biuf":
        raise UsdenoiseError(f"{path}: unsupported array dtype {dtype}")
    check_array_shape(path, shape)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if path.stat().st_size - offset < expected:
        raise UsdenoiseError(f"{path}: truncated .npy file (header declares shape "
                             f"{tuple(shape)} of {dtype}, {expected:,} bytes of data)")
    return tuple(shape), dtype


def read_npy(path: Path, *, raw: bool, header_only: bool) -> Decoded:
    npy_header(path)  # before np.load allocates what the header declares
    try:
        a = np.load(path, allow_pickle=False, mmap_mode="r" if header_only else None)
    except Exception as exc:
        raise UsdenoiseError(f"{path}: cannot read .npy file ({one_line(exc)})") from exc
    if a.dtype.kind not in "biuf":
        raise UsdenoiseError(f"{path}: unsupported array dtype {a.dtype}")
    if raw and not header_only:  # read_raw: the array exactly as stored
        if a.dtype.kind == "f":
            check_float(a, path)
        return Decoded(np.asarray(a), 1.0, npy_info(a, path))
    fhwc = npy_to_fhwc(a, path)
    info = npy_info(a, path, fhwc.shape)
    if header_only:
        return Decoded(np.empty((0, 0, 0, 0), np.uint8), 1.0, info)
    return Decoded(*full_scale(fhwc, path), info)


def npy_info(a: np.ndarray, path: Path, fhwc_shape: tuple | None = None) -> ImageInfo:
    if fhwc_shape is None:
        fhwc_shape = (1, *a.shape[:2], 1) if a.ndim == 2 else (1, 0, 0, 0)
    f, h, w, c = fhwc_shape
    bits = 1 if a.dtype.kind == "b" else a.dtype.itemsize * 8
    return ImageInfo(format="NPY", bit_depth=bits, height=h, width=w, channels=c, frames=f)


def write_npy(tmp: Path, a: np.ndarray, bit_depth: int, path: Path, spacing_mm) -> None:
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(np.moveaxis(a, -1, 0)).astype(np.float32))
