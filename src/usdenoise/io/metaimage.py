"""MetaImage `.mha`/`.mhd` through SimpleITK (the `mha` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usdenoise.core.errors import UsdenoiseError, one_line, optional_import
from usdenoise.core.files import atomic_write
from usdenoise.core.limits import check_pixels
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
        check_pixels(path, size[1] if len(size) > 1 else 1, size[0],  # before decoding
                     frames=size[2] if len(size) > 2 else 1, channels=components)
        a = None if header_only else sitk.GetArrayFromImage(reader.Execute())
    except UsdenoiseError:
        raise
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
    assert a is not None
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


def write_metaimage_like(path: Path, frames: np.ndarray, *, template: Path) -> Path:
    """Write gray frames ``[F, 1, H, W]`` in [0, 1] as ``.mha`` in the layout of ``template``.

    The template decides the layout and the pixel type: a 3-slice scalar volume (PSFHS
    stores its gray images as ``[3, H, W]``) comes back as 3 equal slices, an RGB vector
    image as 3 equal components, a volume of F slices as F slices, a 2-D image as 2-D.
    8-bit templates give uint8, wider integers uint16, float templates float32; spacing,
    origin and direction are copied from the template. Atomic, like every write.
    """
    sitk = sitk_module()
    path = Path(path)
    if path.suffix.lower() != ".mha":
        raise UsdenoiseError(f"{path}: write .mha (one file); .mhd needs a separate data file")
    a = np.asarray(frames, dtype=np.float64)
    if a.ndim != 4 or a.shape[1] != 1:
        raise UsdenoiseError(f"{path}: frames to write have shape {tuple(a.shape)}, "
                             "expected [F, 1, H, W]")
    if not np.isfinite(a).all():
        raise UsdenoiseError(f"{path}: frames to write contain NaN/Inf")
    a = np.clip(a[:, 0], 0.0, 1.0)  # [F, H, W]
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(template))
        reader.ReadImageInformation()
        size, components = reader.GetSize(), reader.GetNumberOfComponents()
        pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
        spacing, origin = reader.GetSpacing(), reader.GetOrigin()
        direction = reader.GetDirection()
    except Exception as exc:
        raise UsdenoiseError(f"{template}: cannot read MetaImage header ({one_line(exc)})") from exc
    if "float" in pixel:
        q: np.ndarray = a.astype(np.float32)
    else:
        bits = int("".join(c for c in pixel if c.isdigit()) or 8)
        q = quantize(a, 8 if bits <= 8 else 16)
    planes = len(size) == 3 and size[2] == 3 and components == 1
    if planes:  # PSFHS: one gray image stored as three equal slices
        if q.shape[0] != 1:
            raise UsdenoiseError(f"{path}: {q.shape[0]} frames for a 3-plane template")
        array, vector = np.repeat(q, 3, axis=0), False
    elif components > 1:
        array, vector = np.repeat(q[..., None], components, axis=-1), True
        array = array if len(size) == 3 else array[0]
    else:
        array, vector = (q if len(size) == 3 else q[0]), False
    img = sitk.GetImageFromArray(array, isVector=vector)
    if img.GetDimension() == len(spacing):
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        img.SetDirection(direction)
    with atomic_write(path) as tmp:
        try:
            sitk.WriteImage(img, str(tmp), True)
        except Exception as exc:
            raise UsdenoiseError(f"{path}: cannot write MetaImage ({one_line(exc)})") from exc
    return path
