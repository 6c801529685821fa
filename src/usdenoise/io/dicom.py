"""DICOM reading and writing (pydicom; the ``dicom`` extra). Use through ``usdenoise.io``.

Scaling of gray data to [0, 1], in this order:

1. the Modality LUT: ``v = stored * RescaleSlope + RescaleIntercept`` (1 and 0 when absent);
2. division by the stored bit range: ``x = v / (2**BitsStored - 1)`` for unsigned data and
   ``x = (v + 2**(BitsStored - 1)) / (2**BitsStored - 1)`` for signed data, clipped to
   [0, 1] with a warning if any value falls outside. Dividing by the fixed bit range (rather
   than by the rescaled range, which would cancel any linear rescale) keeps the rescale's
   effect and makes the same stored value mean the same brightness in every file;
3. ``MONOCHROME1`` (0 = white) is inverted: ``x = 1 - x``.

Window centre/width (VOI LUT) is not applied: it is a display setting, not data.
Colour (``RGB``, ``YBR_FULL``, ``YBR_FULL_422``, ``PALETTE COLOR``) is decoded to RGB and
scaled by the bit range; ``read_frames`` then turns it into gray like any RGB image (equal
planes -> one channel, otherwise BT.601 luma with a warning). For YBR data the luma equals
the stored Y plane up to rounding.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from usdenoise.core.errors import UsdenoiseError, one_line, optional_import
from usdenoise.core.files import atomic_write
from usdenoise.io.common import Decoded, ImageInfo, check_input_file

_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR")
_SUPPORTED = ("MONOCHROME1", "MONOCHROME2", *_COLOUR)
# tags that describe the old pixel values and would mislead a viewer of the new ones
_STALE_TAGS = (
    "RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth",
    "WindowCenterWidthExplanation", "VOILUTFunction", "VOILUTSequence", "ModalityLUTSequence",
    "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue",
    "PixelPaddingRangeLimit", "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor", "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData",
    "PaletteColorLookupTableUID", "ICCProfile", "ColorSpace", "PlanarConfiguration",
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "FloatPixelData",
    "DoubleFloatPixelData",
)


def _pydicom():
    return optional_import("pydicom", extra="dicom")


def _dcmread(path: Path, *, header_only: bool):
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=header_only)
    except pydicom.errors.InvalidDicomError as exc:
        raise UsdenoiseError(f"{path}: not a DICOM file ({one_line(exc)})") from exc
    except Exception as exc:
        raise UsdenoiseError(f"{path}: cannot read DICOM (corrupt or truncated: "
                             f"{one_line(exc)})") from exc
    for keyword in ("Rows", "Columns"):
        if keyword not in ds:
            raise UsdenoiseError(f"{path}: DICOM has no image ({keyword} missing)")
    if not header_only and "PixelData" not in ds:
        raise UsdenoiseError(f"{path}: DICOM has no pixel data")
    photometric = _photometric(ds)
    if photometric not in _SUPPORTED:
        raise UsdenoiseError(f"{path}: unsupported PhotometricInterpretation '{photometric}'")
    return ds


def _photometric(ds) -> str:
    return str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()


def _spacing_mm(ds) -> tuple[float, float] | None:
    """(row, column) spacing from PixelSpacing, else the first ultrasound region in cm."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            return float(value[0]), float(value[1])
    for region in ds.get("SequenceOfUltrasoundRegions", []):
        units = (region.get("PhysicalUnitsYDirection"), region.get("PhysicalUnitsXDirection"))
        dy, dx = region.get("PhysicalDeltaY"), region.get("PhysicalDeltaX")
        if units == (3, 3) and dx and dy:  # 3 = centimetres
            return abs(float(dy)) * 10.0, abs(float(dx)) * 10.0
    return None


def _info(ds) -> ImageInfo:
    return ImageInfo(
        format="DICOM",
        bit_depth=int(ds.get("BitsStored", ds.get("BitsAllocated", 8))),
        height=int(ds.Rows),
        width=int(ds.Columns),
        channels=int(ds.get("SamplesPerPixel", 1)),
        frames=int(ds.get("NumberOfFrames", 1) or 1),
        spacing_mm=_spacing_mm(ds),
    )


def _check_jpeg_frames(ds, path: Path, frames: int) -> None:
    """Refuse JPEG-family frames without start and end markers before any codec sees them.

    Every JPEG, JPEG-LS and JPEG 2000 codestream starts with a marker and ends with FFD9;
    python-gdcm can hang on some streams that do not (seen with a truncated APP0 segment).
    """
    from pydicom.encaps import generate_frames

    for i, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frames)):
        start_ok = frame[:2] in (b"\xff\xd8", b"\xff\x4f") or frame[4:8] == b"jP  "
        if not start_ok or frame.rstrip(b"\x00")[-2:] != b"\xff\xd9":
            raise UsdenoiseError(f"{path}: compressed frame {i} is corrupt or truncated "
                                 "(missing JPEG start/end marker)")


def _decode(ds, path: Path, frames: int) -> np.ndarray:
    """pixel_array, trying Pillow before python-gdcm where Pillow supports the syntax."""
    pydicom = _pydicom()
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or not syntax.is_compressed:
        return pydicom.pixels.pixel_array(ds)
    if syntax.startswith("1.2.840.10008.1.2.4."):
        _check_jpeg_frames(ds, path, frames)
    try:
        plugins = pydicom.pixels.get_decoder(syntax).available_plugins
    except NotImplementedError:
        plugins = ()
    if "pillow" in plugins and len(plugins) > 1:
        try:
            return pydicom.pixels.pixel_array(ds, decoding_plugin="pillow")
        except Exception:  # Pillow lacks some variants (e.g. 12-bit); let the others try
            pass
    return pydicom.pixels.pixel_array(ds)


def _pixels(ds, path: Path) -> np.ndarray:
    """Decoded pixels as [F, H, W, C] (YBR converted to RGB, palette applied)."""
    pydicom = _pydicom()
    try:
        a = _decode(ds, path, int(ds.get("NumberOfFrames", 1) or 1))
        if _photometric(ds) == "PALETTE COLOR":
            a = pydicom.pixels.apply_color_lut(a, ds)
    except UsdenoiseError:
        raise
    except Exception as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        raise UsdenoiseError(
            f"{path}: cannot decode DICOM pixel data (transfer syntax {syntax}, "
            f"{getattr(syntax, 'name', '')}: {one_line(exc)})"
        ) from exc
    frames, info = int(ds.get("NumberOfFrames", 1) or 1), _info(ds)
    channels = a.shape[-1] if _photometric(ds) == "PALETTE COLOR" else info.channels
    return a.reshape(frames, info.height, info.width, channels)


def read_dicom(path: Path, *, raw: bool = False, header_only: bool = False) -> Decoded:
    """Decode a DICOM file (see the module docstring for the scaling)."""
    ds = _dcmread(path, header_only=header_only)
    info = _info(ds)
    if header_only:
        return Decoded(np.empty((0, 0, 0, 0), np.uint8), 1.0, info)
    a = _pixels(ds, path)
    photometric = _photometric(ds)
    if raw:
        return Decoded(a, 1.0, info)
    if photometric == "PALETTE COLOR":
        return Decoded(a, 255.0 if a.dtype == np.uint8 else 65535.0, info)
    bits = info.bit_depth
    full_scale = float(2**bits - 1)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return Decoded(a, full_scale, info)
    v = a.astype(np.float64) * float(ds.get("RescaleSlope", 1) or 1)
    v += float(ds.get("RescaleIntercept", 0) or 0)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        v += 2 ** (bits - 1)
    x = v / full_scale
    outside = int(np.count_nonzero((x < 0) | (x > 1)))
    if outside:
        warnings.warn(f"{path}: {outside} rescaled values outside the {bits}-bit range "
                      "were clipped to [0, 1]", stacklevel=4)
    x = np.clip(x, 0.0, 1.0)
    if photometric == "MONOCHROME1":
        x = 1.0 - x
    return Decoded(x.astype(np.float32), 1.0, info)


def write_dicom(path: str | os.PathLike, frames, *, template: str | os.PathLike) -> Path:
    """Write denoised frames ``[F, 1, H, W]`` (or ``[1, H, W]``, ``[H, W]``) in [0, 1] as DICOM.

    Every tag of ``template`` is kept except those describing the old pixel values; the
    result is uncompressed (Explicit VR Little Endian), MONOCHROME2, unsigned, with the
    template's BitsStored (8 -> uint8, otherwise 16-bit words), no rescale, and a new SOP
    Instance UID and Series Instance UID. ``x`` maps to ``round(x * (2**BitsStored - 1))``,
    so reading the file back gives ``x`` up to quantisation. Colour and YBR templates give
    a gray (MONOCHROME2) file: the denoiser works on the gray luma, colour overlays are
    not kept. MONOCHROME1 templates also become MONOCHROME2 with the same appearance.
    ImageType's first value becomes DERIVED.
    """
    import torch

    pydicom = _pydicom()
    path, template = Path(path), check_input_file(template)
    a = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if a.ndim == 2:
        a = a[None, None]
    elif a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[1] != 1:
        raise UsdenoiseError(f"{path}: frames to write have shape {tuple(a.shape)}, "
                             "expected [F, 1, H, W]")
    a = a[:, 0].astype(np.float64)
    if not np.isfinite(a).all():
        raise UsdenoiseError(f"{path}: frames to write contain NaN/Inf")
    ds = _dcmread(template, header_only=True)
    bits = min(max(int(ds.get("BitsStored", 8)), 1), 16)
    dtype = np.uint8 if bits <= 8 else np.uint16
    q = np.round(np.clip(a, 0.0, 1.0) * (2**bits - 1)).astype(dtype)
    for keyword in (*_STALE_TAGS, "PixelData"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.set_pixel_data(q if q.shape[0] > 1 else q[0], "MONOCHROME2", bits)
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "ImageType" in ds and len(ds.ImageType):
        ds.ImageType = ["DERIVED", *list(ds.ImageType)[1:]]
    ds.DerivationDescription = "speckle reduction (usdenoise)"
    with atomic_write(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path
