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
import secrets
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from usdenoise.errors import UsdenoiseError, optional_import

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


# ---------------------------------------------------------------------------- errors


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


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


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(132)[128:] == b"DICM"


def _suffix(path: Path, table: dict) -> str:
    suffix = path.suffix.lower()
    if suffix == "" and table is READERS and path.is_file() and _is_dicom(path):
        return ".dcm"  # DICOM files often have no suffix; the DICM marker identifies them
    if suffix not in table:
        known = ", ".join(sorted(table))
        raise UsdenoiseError(f"{path}: unsupported format '{path.suffix}' (supported: {known})")
    return suffix


# ---------------------------------------------------------------------------- Pillow


def _png_header(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR chunk."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
        raise UsdenoiseError(f"{path}: not a PNG file (bad signature)")
    return head[24], head[25]


_PIL_CHANNELS = {"1": 1, "L": 1, "LA": 2, "La": 2, "P": 3, "PA": 4, "RGB": 3, "RGBA": 4,
                 "RGBa": 4, "RGBX": 3, "CMYK": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}


def _pil_bits(img, path: Path) -> int:
    mode = img.mode
    if mode.startswith("I;16"):
        return 16
    if mode == "I":
        return 32 if img.format != "PNG" else 16
    if mode == "F":
        return 32
    if mode == "1":
        return 1
    if img.format == "PNG":
        bits, _ = _png_header(path)
        return max(bits, 8) if mode != "P" else 8
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(int(b) for b in bits)
    return 8


def _pil_info(img, path: Path, frames: int) -> ImageInfo:
    channels = _PIL_CHANNELS.get(img.mode, 1)
    if img.mode == "P" and "transparency" in img.info:
        channels = 4
    return ImageInfo(format=img.format or path.suffix.lstrip(".").upper(),
                     bit_depth=_pil_bits(img, path), height=img.height, width=img.width,
                     channels=channels, frames=frames)


def _pil_frame(img, path: Path, raw: bool) -> tuple[np.ndarray, float]:
    """One decoded frame as [H, W, C] and its full scale."""
    mode = img.mode
    if mode == "1":
        a = np.asarray(img, dtype=np.uint8)
        return (a if raw else a * 255)[..., None], 255.0
    if mode == "P" and raw:
        return np.asarray(img)[..., None], 255.0
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if ("transparency" in img.info or mode == "PA") else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        img = img.convert("RGB")
    elif mode in ("La", "RGBa"):
        img = img.convert(mode.upper())
    a = np.asarray(img)
    if img.mode.startswith("I;16"):
        a, scale = a.astype(np.uint16), 65535.0
    elif img.mode == "I":
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise UsdenoiseError(f"{path}: 32-bit integer pixels outside 0..65535 not supported")
        a, scale = a.astype(np.uint16), 65535.0
    elif img.mode == "F":
        a, scale = a.astype(np.float32), 1.0
    else:
        scale = 255.0
    return (a[..., None] if a.ndim == 2 else a), scale


def _needs_opencv(img, path: Path) -> bool:
    """Pillow silently reduces 16-bit colour to 8 bit; OpenCV keeps it."""
    return img.mode in ("RGB", "RGBA") and _pil_bits(img, path) == 16


def _read_opencv(path: Path) -> tuple[list[np.ndarray], float]:
    import cv2

    buf = np.fromfile(path, dtype=np.uint8)
    ok, images = cv2.imdecodemulti(buf, cv2.IMREAD_UNCHANGED)
    if not ok or not images:
        raise UsdenoiseError(f"{path}: cannot decode 16-bit colour image (corrupt or truncated)")
    frames = []
    for im in images:
        im = im[..., None] if im.ndim == 2 else im
        if im.shape[-1] == 3:
            im = im[..., ::-1]
        elif im.shape[-1] == 4:
            im = im[..., [2, 1, 0, 3]]
        frames.append(np.ascontiguousarray(im))
    return frames, 65535.0 if frames[0].dtype == np.uint16 else 255.0


def _read_pillow(path: Path, *, raw: bool, header_only: bool) -> Decoded:
    from PIL import Image

    try:
        with Image.open(path) as img:
            n = getattr(img, "n_frames", 1) if img.format == "TIFF" else 1
            info = _pil_info(img, path, n)
            if header_only:
                return Decoded(np.empty((0, 0, 0, 0), np.uint8), 1.0, info)
            if _needs_opencv(img, path):
                frames, scale = _read_opencv(path)
            else:
                frames, scales = [], set()
                for i in range(n):
                    img.seek(i)
                    img.load()
                    frame, scale = _pil_frame(img, path, raw)
                    frames.append(frame)
                    scales.add(scale)
                scale = max(scales)
    except UsdenoiseError:
        raise
    except Exception as exc:  # Pillow raises many types for broken files
        raise UsdenoiseError(
            f"{path}: cannot read {path.suffix.lstrip('.').upper()} image "
            f"(corrupt, truncated or unsupported: {_one_line(exc)})"
        ) from exc
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise UsdenoiseError(f"{path}: pages have different sizes or modes {sorted(shapes)}")
    return Decoded(np.stack(frames), scale, info)


# ---------------------------------------------------------------------------- .npy


def _check_float(a: np.ndarray, path: Path) -> None:
    if a.size and not np.isfinite(a).all():
        bad = int(np.size(a) - np.isfinite(a).sum())
        raise UsdenoiseError(f"{path}: contains {bad} NaN/Inf values")


def _npy_to_fhwc(a: np.ndarray, path: Path) -> np.ndarray:
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


def _read_npy(path: Path, *, raw: bool, header_only: bool) -> Decoded:
    try:
        a = np.load(path, allow_pickle=False, mmap_mode="r" if header_only else None)
    except Exception as exc:
        raise UsdenoiseError(f"{path}: cannot read .npy file ({_one_line(exc)})") from exc
    if a.dtype.kind not in "biuf":
        raise UsdenoiseError(f"{path}: unsupported array dtype {a.dtype}")
    if raw and not header_only:  # read_raw: the array exactly as stored
        if a.dtype.kind == "f":
            _check_float(a, path)
        return Decoded(np.asarray(a), 1.0, _npy_info(a, path))
    fhwc = _npy_to_fhwc(a, path)
    info = _npy_info(a, path, fhwc.shape)
    if header_only:
        return Decoded(np.empty((0, 0, 0, 0), np.uint8), 1.0, info)
    return Decoded(*_full_scale(fhwc, path), info)


def _full_scale(a: np.ndarray, path: Path) -> tuple[np.ndarray, float]:
    """Integers scale by their dtype's maximum; floats must be finite and in [0, 1]."""
    if a.dtype.kind == "b":
        return a.astype(np.uint8), 1.0
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
        _check_float(a, path)
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


def _npy_info(a: np.ndarray, path: Path, fhwc_shape: tuple | None = None) -> ImageInfo:
    if fhwc_shape is None:
        fhwc_shape = (1, *a.shape[:2], 1) if a.ndim == 2 else (1, 0, 0, 0)
    f, h, w, c = fhwc_shape
    bits = 1 if a.dtype.kind == "b" else a.dtype.itemsize * 8
    return ImageInfo(format="NPY", bit_depth=bits, height=h, width=w, channels=c, frames=f)


# ---------------------------------------------------------------------------- MetaImage


def _sitk():
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


def _read_metaimage(path: Path, *, raw: bool, header_only: bool) -> Decoded:
    sitk = _sitk()
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
                             f"data file: {_one_line(exc)})") from exc
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
    return Decoded(fhwc, 1.0, info) if raw else Decoded(*_full_scale(fhwc, path), info)


# ---------------------------------------------------------------------------- dispatch

def _read_dicom(path: Path, *, raw: bool, header_only: bool) -> Decoded:
    from usdenoise.io_dicom import read_dicom

    return read_dicom(path, raw=raw, header_only=header_only)


Reader = Callable[..., Decoded]
READERS: dict[str, Reader] = {
    **dict.fromkeys(PILLOW_SUFFIXES, _read_pillow),
    ".npy": _read_npy,
    **dict.fromkeys(DICOM_SUFFIXES, _read_dicom),
    **dict.fromkeys(METAIMAGE_SUFFIXES, _read_metaimage),
}


def decode(path: str | os.PathLike, *, raw: bool = False, header_only: bool = False) -> Decoded:
    """Decode a file to ``Decoded(pixels[F,H,W,C], full_scale, info)`` (library internal)."""
    path = check_input_file(path)
    reader = READERS[_suffix(path, READERS)]
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


def publish_folder(staging: Path, out_dir: Path) -> None:
    """Move every entry of a finished staging folder into `out_dir`, replacing what is there.

    Commands write their whole output into a staging folder first, so a failure part-way
    leaves nothing behind; this is the last step, run only once everything is written.
    """
    import shutil

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for item in Path(staging).iterdir():
        target = Path(out_dir) / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)


def make_temp_file(folder: Path, *, prefix: str = ".tmp-", suffix: str = "") -> Path:
    """An empty temporary file in `folder` with the permissions of an ordinary new file.

    (mkstemp creates files readable by the owner only, which would leak into outputs.)
    """
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    The parent folder is created if needed. On any error the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise UsdenoiseError(f"{path}: is a folder, cannot write a file there")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UsdenoiseError(f"{path}: cannot create output folder, {blocker} is a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsdenoiseError(
            f"{path}: cannot create output folder {path.parent} ({_one_line(exc)})"
        ) from exc
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsdenoiseError(f"{path}: output folder {path.parent} is not writable")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise UsdenoiseError(f"{path}: cannot write ({_one_line(exc)})") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


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
    _check_float(a, path)
    return np.clip(np.moveaxis(a, 0, -1), 0.0, 1.0)


def _quantize(a: np.ndarray, bit_depth: int) -> np.ndarray:
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(a * np.iinfo(dtype).max).astype(dtype)


def _save_pillow_or_cv(tmp: Path, q: np.ndarray, fmt: str, **options) -> None:
    """q is [H, W, C] uint8/uint16; 16-bit colour goes through OpenCV (Pillow cannot)."""
    from PIL import Image

    if q.dtype == np.uint16 and q.shape[-1] == 3:
        import cv2

        ok, buf = cv2.imencode(tmp.suffix, np.ascontiguousarray(q[..., ::-1]))
        if not ok:
            raise OSError("OpenCV could not encode the image")
        tmp.write_bytes(buf.tobytes())
        return
    img = Image.fromarray(q[..., 0] if q.shape[-1] == 1 else q)
    img.save(tmp, format=fmt, **options)


_MAX_BITS = {".png": 16, ".tif": 16, ".tiff": 16, ".jpg": 8, ".jpeg": 8, ".bmp": 8}
_PIL_FORMAT = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG",
               ".bmp": "BMP"}


def _write_pillow(tmp: Path, a: np.ndarray, bit_depth: int, path: Path, spacing_mm) -> None:
    suffix = path.suffix.lower()
    if bit_depth > _MAX_BITS[suffix]:
        raise UsdenoiseError(f"{path}: {suffix} cannot store {bit_depth}-bit images (use .png)")
    options = {"quality": 95} if _PIL_FORMAT[suffix] == "JPEG" else {}
    _save_pillow_or_cv(tmp, _quantize(a, bit_depth), _PIL_FORMAT[suffix], **options)


def _write_npy(tmp: Path, a: np.ndarray, bit_depth: int, path: Path, spacing_mm) -> None:
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(np.moveaxis(a, -1, 0)).astype(np.float32))


def _save_metaimage(tmp: Path, q: np.ndarray, spacing_mm) -> None:
    """q is [H, W, C]; C == 3 becomes an RGB vector pixel. zlib compression (lossless)."""
    sitk = _sitk()
    img = sitk.GetImageFromArray(q if q.shape[-1] == 3 else q[..., 0], isVector=q.shape[-1] == 3)
    if spacing_mm is not None:
        img.SetSpacing((float(spacing_mm[1]), float(spacing_mm[0])))
    sitk.WriteImage(img, str(tmp), True)


def _write_metaimage(tmp: Path, a: np.ndarray, bit_depth: int, path: Path, spacing_mm) -> None:
    if path.suffix.lower() == ".mhd":
        raise UsdenoiseError(f"{path}: write .mha (one file); .mhd needs a separate data file")
    _save_metaimage(tmp, _quantize(a, bit_depth), spacing_mm)


def _write_dicom_refused(tmp: Path, a, bit_depth: int, path: Path, spacing_mm) -> None:
    raise UsdenoiseError(f"{path}: DICOM needs a template for its tags; use write_dicom")


Writer = Callable[..., None]
WRITERS: dict[str, Writer] = {
    **dict.fromkeys(PILLOW_SUFFIXES, _write_pillow),
    ".npy": _write_npy,
    **dict.fromkeys(DICOM_SUFFIXES, _write_dicom_refused),
    **dict.fromkeys(METAIMAGE_SUFFIXES, _write_metaimage),
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
    writer = WRITERS[_suffix(path, WRITERS)]
    if bit_depth not in (8, 16):
        raise UsdenoiseError(f"{path}: bit_depth must be 8 or 16, got {bit_depth}")
    a = _image_hwc(x, path)
    with atomic_write(path) as tmp:
        try:
            writer(tmp, a, bit_depth, path, spacing_mm)
        except (UsdenoiseError, OSError):
            raise
        except Exception as exc:
            raise UsdenoiseError(f"{path}: cannot write image ({_one_line(exc)})") from exc
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
            _save_metaimage(tmp, q[..., None], None)
        else:
            _save_pillow_or_cv(tmp, q[..., None], _PIL_FORMAT[suffix])
    return path


def write_dicom(path: str | os.PathLike, frames, *, template: str | os.PathLike) -> Path:
    """Write frames ``[F, 1, H, W]`` in [0, 1] as an uncompressed MONOCHROME2 DICOM with the
    tags of ``template``, its bit depth, and new SOP Instance and Series UIDs.

    See :func:`usdenoise.io_dicom.write_dicom` for what happens to colour templates.
    """
    from usdenoise.io_dicom import write_dicom as _write_dicom

    return _write_dicom(path, frames, template=template)
