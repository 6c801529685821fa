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
from usdenoise.core.limits import check_pixels
from usdenoise.io.common import Decoded, ImageInfo, check_input_file

_GRAY = ("MONOCHROME1", "MONOCHROME2")
# lossy compression: always (JPEG baseline/extended, JPEG-LS near-lossless, MPEG), and where
# the file does not say otherwise (JPEG 2000 and HTJ2K syntaxes that allow lossy coding)
_ALWAYS_LOSSY = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1", "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1", "1.2.840.10008.1.2.4.100": "ISO_13818_2",
    "1.2.840.10008.1.2.4.101": "ISO_13818_2", "1.2.840.10008.1.2.4.102": "ISO_14496_10",
    "1.2.840.10008.1.2.4.103": "ISO_14496_10", "1.2.840.10008.1.2.4.104": "ISO_14496_10",
    "1.2.840.10008.1.2.4.105": "ISO_14496_10", "1.2.840.10008.1.2.4.106": "ISO_14496_10",
    "1.2.840.10008.1.2.4.107": "ISO_23008_2", "1.2.840.10008.1.2.4.108": "ISO_23008_2",
}
_MAYBE_LOSSY = {
    "1.2.840.10008.1.2.4.91": "ISO_15444_1", "1.2.840.10008.1.2.4.93": "ISO_15444_1",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",
}
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
    try:  # the pixel limit, from the header, before any pixel is decoded
        declared = (ds.Rows, ds.Columns, ds.get("NumberOfFrames", 1),
                    ds.get("SamplesPerPixel", 1))
    except Exception as exc:
        raise UsdenoiseError(f"{path}: cannot read DICOM image size ({one_line(exc)})") from exc
    check_pixels(path, declared[0], declared[1], frames=declared[2], channels=declared[3])
    if not header_only and "PixelData" not in ds:
        raise UsdenoiseError(f"{path}: DICOM has no pixel data")
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


def _check_gdcm_stream(ds, path: Path, frames: int) -> None:
    """Refuse JPEG-family frames without start and end markers before python-gdcm sees them.

    Only python-gdcm gets this check (it can hang on such streams, seen with a truncated
    APP0 segment); pydicom's other decoder plugins are tried first and fail cleanly. The end
    marker may be followed by a few padding bytes (00 or FF, seen in real files).
    """
    from pydicom.encaps import generate_frames

    for i, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frames)):
        start_ok = frame[:2] in (b"\xff\xd8", b"\xff\x4f") or frame[4:8] == b"jP  "
        if not start_ok or b"\xff\xd9" not in frame[-8:]:  # padding may follow EOI
            raise UsdenoiseError(f"{path}: compressed frame {i} is corrupt or truncated "
                                 "(missing JPEG start/end marker)")


def _decode(ds, path: Path, frames: int) -> np.ndarray:
    """``pixel_array`` through pydicom's decoder plugins (YBR converted to RGB by pydicom).

    Compressed data: every installed plugin for the transfer syntax (pylibjpeg with
    pylibjpeg-openjpeg / -rle, Pillow, pydicom's own RLE), python-gdcm last.
    """
    pydicom = _pydicom()
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or not syntax.is_compressed:
        return pydicom.pixels.pixel_array(ds)
    try:
        plugins = tuple(pydicom.pixels.get_decoder(syntax).available_plugins)
    except NotImplementedError:
        plugins = ()
    if not plugins:
        raise UsdenoiseError(
            f"{path}: no decoder installed for transfer syntax {syntax} "
            f"({getattr(syntax, 'name', '')}): pip install 'usdenoise[dicom]' (pylibjpeg, "
            "pylibjpeg-openjpeg, python-gdcm); 12-bit JPEG Extended needs a GPL decoder "
            "(pylibjpeg-libjpeg) that usdenoise does not install"
        )
    failures: list[str] = []
    for plugin in sorted(plugins, key=lambda name: name == "gdcm"):
        if plugin == "gdcm" and syntax.startswith("1.2.840.10008.1.2.4."):
            _check_gdcm_stream(ds, path, frames)
        try:
            return pydicom.pixels.pixel_array(ds, decoding_plugin=plugin)
        except Exception as exc:
            failures.append(f"{plugin}: {one_line(exc)}")
    raise UsdenoiseError(
        f"{path}: cannot decode DICOM pixel data (transfer syntax {syntax}, "
        f"{getattr(syntax, 'name', '')}: {'; '.join(failures)})"[:400]
    )


def _pixels(ds, path: Path) -> np.ndarray:
    """Decoded pixels as [F, H, W, C] (YBR converted to RGB, palette applied)."""
    pydicom = _pydicom()
    photometric, samples = _photometric(ds), int(ds.get("SamplesPerPixel", 1))
    if samples == 1 and photometric not in (*_GRAY, "PALETTE COLOR"):
        raise UsdenoiseError(f"{path}: unsupported PhotometricInterpretation '{photometric}' "
                             "for one sample per pixel")
    try:
        a = _decode(ds, path, int(ds.get("NumberOfFrames", 1) or 1))
        if photometric == "PALETTE COLOR":
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
    channels = a.shape[-1] if photometric == "PALETTE COLOR" else info.channels
    return a.reshape(frames, info.height, info.width, channels)


def read_dicom(path: Path, *, raw: bool = False, header_only: bool = False) -> Decoded:
    """Decode a DICOM file (see the module docstring for the scaling)."""
    try:
        return _read_dicom(path, raw=raw, header_only=header_only)
    except UsdenoiseError:
        raise
    except (NotImplementedError, ValueError, TypeError, KeyError, AttributeError,
            OverflowError, IndexError) as exc:  # pydicom parses tags lazily, on first use
        raise UsdenoiseError(f"{path}: corrupt DICOM header ({one_line(exc)})") from None


def _read_dicom(path: Path, *, raw: bool, header_only: bool) -> Decoded:
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


def _window(ds, bits: int) -> tuple[list[float], list[float]] | None:
    """The template's window centres and widths in the written file's stored values, or
    None when it has none (or it is colour, where no window applies).

    Reading maps ``v = stored * slope + intercept`` (+ ``2**(bits-1)`` if signed) to
    ``x = v / (2**bits - 1)``, inverted for MONOCHROME1; writing stores ``x * (2**bits - 1)``
    without rescale. So a centre ``c`` becomes ``c`` (unsigned MONOCHROME2), ``c + 2**(bits-1)``
    (signed) and ``2**bits - 1 - that`` (MONOCHROME1); widths are unchanged.
    """
    if "WindowCenter" not in ds or "WindowWidth" not in ds or _photometric(ds) not in _GRAY:
        return None

    def values(element) -> list[float]:
        raw = ds[element].value
        return [float(v) for v in (raw if isinstance(raw, (list, tuple)) or
                                   hasattr(raw, "__iter__") and not isinstance(raw, str)
                                   else [raw])]

    centres, widths = values("WindowCenter"), values("WindowWidth")
    shift = 2 ** (bits - 1) if int(ds.get("PixelRepresentation", 0)) == 1 else 0
    centres = [c + shift for c in centres]
    if _photometric(ds) == "MONOCHROME1":
        centres = [float(2**bits - 1) - c for c in centres]
    return centres, widths


def _lossy_method(ds) -> str | None:
    """The compression method (DICOM defined term) when the template's pixels went through
    lossy compression, from its tags or its transfer syntax; None when lossless."""
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    flag = str(ds.get("LossyImageCompression", "")).strip()
    if syntax in _ALWAYS_LOSSY:
        return _ALWAYS_LOSSY[syntax]
    if syntax in _MAYBE_LOSSY and flag != "00":
        return _MAYBE_LOSSY[syntax]
    return "" if flag == "01" else None


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

    Window centre/width are kept, converted to the written values (see ``_window``; a VOI
    LUT table only where those values equal the template's modality values); palette tags
    go with the palette (the file is gray). A template whose pixels were lossy compressed
    (``LossyImageCompression`` 01, or a lossy transfer syntax) gives a file marked lossy:
    ``LossyImageCompression = 01``, its ``LossyImageCompressionMethod`` (with the template's
    syntax added) and ``LossyImageCompressionRatio`` kept.
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
    window = _window(ds, bits)
    explanation = ds.get("WindowCenterWidthExplanation")
    voi_function = ds.get("VOILUTFunction")
    identity = (_photometric(ds) == "MONOCHROME2" and int(ds.get("PixelRepresentation", 0)) == 0
                and float(ds.get("RescaleSlope", 1) or 1) == 1
                and float(ds.get("RescaleIntercept", 0) or 0) == 0)
    voi_lut = ds.get("VOILUTSequence") if identity else None
    lossy = _lossy_method(ds)
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
    if window is not None:
        ds.WindowCenter = window[0] if len(window[0]) > 1 else window[0][0]
        ds.WindowWidth = window[1] if len(window[1]) > 1 else window[1][0]
        if explanation is not None:
            ds.WindowCenterWidthExplanation = explanation
        if voi_function is not None:
            ds.VOILUTFunction = voi_function
    if voi_lut is not None:
        ds.VOILUTSequence = voi_lut
    if lossy is not None:
        ds.LossyImageCompression = "01"
        methods = [str(m) for m in ds.get("LossyImageCompressionMethod", [])] \
            if not isinstance(ds.get("LossyImageCompressionMethod"), str) \
            else [ds.LossyImageCompressionMethod]
        if lossy and lossy not in methods:
            methods.append(lossy)
        if methods:
            ds.LossyImageCompressionMethod = methods if len(methods) > 1 else methods[0]
    ds.set_original_encoding(False, True)  # written little endian, also from big endian
    with atomic_write(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path
