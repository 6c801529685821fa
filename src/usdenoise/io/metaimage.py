"""MetaImage `.mha`/`.mhd` through SimpleITK (the `mha` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usdenoise.core.errors import UsdenoiseError, one_line, optional_import
from usdenoise.io.common import (
    Decoded,
    ImageInfo,
    full_scale,
    quantize,
)


def sitk_module():
    return optional_import("SimpleITK", extra="mha")


def _metaimage_spacing(path: Path, spacing: tuple[float, ...]) -> tuple[float, float] | None:
    """(row, column) spacing in mm, or None when the header does not state one."""
    with open(path, "rb") as fh:
        head = fh.read(65536).decode("latin-1")
    keys = set()
    for line in head.splitlines():
        key = line.split("=", 1)[0].strip()
        keys.add(key)
        if key == "ElementDataFile":
            break
    if not keys & {"ElementSpacing", "ElementSize"} or len(spacing) < 2:
        return None
    return float(spacing[1]), float(spacing[0])


def _metaimage_fhwc(a: np.ndarray, components: int) -> np.ndarray:
    """SimpleITK arrays -> [F, H, W, C]. A 3-slice scalar volume is read as 3 channels
    (PSFHS stores its gray images as [3, H, W]); other volumes are frames."""
    if components > 1:
        return a[None] if a.ndim == 3 else a
    if a.ndim == 2:
        return a[None, ..., None]
    return np.moveaxis(a, 0, -1)[None] if a.shape[0] == 3 else a[..., None]


def read_metaimage(path: Path, *, raw: bool, header_only: bool) -> Decoded:
    sitk = sitk_module()
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size, components = reader.GetSize(), reader.GetNumberOfComponents()
        pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
        spacing = _metaimage_spacing(path, reader.GetSpacing())
        a = None if header_only else sitk.GetArrayFromImage(reader.Execute())
    except Exception as exc:
        raise UsdenoiseError(f"{path}: cannot read MetaImage (corrupt, truncated or missing "
                             f"data file: {one_line(exc)})") from exc
    if len(size) not in (2, 3):
        raise UsdenoiseError(f"{path}: {len(size)}-D MetaImage not supported (2-D or 3-D)")
    frames = size[2] if len(size) == 3 else 1
    channels = components
    if frames == 3 and components == 1:
        frames, channels = 1, 3
    bits = 32 if "float" in pixel else int("".join(c for c in pixel if c.isdigit()) or 8)
    info = ImageInfo("MetaImage", bits, size[1], size[0], channels, frames, spacing)
    if header_only:
        return Decoded(np.empty((0, 0, 0, 0), np.uint8), 1.0, info)
    fhwc = _metaimage_fhwc(a, components)
    return Decoded(fhwc, 1.0, info) if raw else Decoded(*full_scale(fhwc, path), info)


def save_metaimage(tmp: Path, q: np.ndarray, spacing_mm) -> None:
    """q is [H, W, C]; C == 3 becomes an RGB vector pixel. zlib compression (lossless)."""
    sitk = sitk_module()
    img = sitk.GetImageFromArray(q if q.shape[-1] == 3 else q[..., 0], isVector=q.shape[-1] == 3)
    if spacing_mm is not None:
        img.SetSpacing((float(spacing_mm[1]), float(spacing_mm[0])))
    sitk.WriteImage(img, str(tmp), True)


def write_metaimage(tmp: Path, a: np.ndarray, bit_depth: int, path: Path, spacing_mm) -> None:
    if path.suffix.lower() == ".mhd":
        raise UsdenoiseError(f"{path}: write .mha (one file); .mhd needs a separate data file")
    save_metaimage(tmp, quantize(a, bit_depth), spacing_mm)
