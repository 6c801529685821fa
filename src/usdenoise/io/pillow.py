"""PNG, JPEG, BMP and TIFF through Pillow (OpenCV for what Pillow cannot: 16-bit colour)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from usdenoise.core.errors import UsdenoiseError, one_line
from usdenoise.core.limits import check_pixel_count, check_pixels
from usdenoise.io.common import (
    Decoded,
    ImageInfo,
    quantize,
)


def _png_header(path: Path) -> tuple[int, int, int, int, int]:
    """(width, height, bit depth, colour type, interlace) from a PNG's IHDR chunk."""
    with open(path, "rb") as fh:
        head = fh.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n":
        raise UsdenoiseError(f"{path}: not a PNG file (bad signature)")
    return (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24],
            head[25], head[28])


#: samples per pixel of each PNG colour type (grey, RGB, palette, grey+alpha, RGBA)
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 passes: (first column, first row, column step, row step)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))


def _png_expected_bytes(width: int, height: int, bits: int, colour: int, interlace: int
                        ) -> int:
    """Bytes the IDAT stream of a PNG with this IHDR must inflate to (a filter byte per
    row of each pass, then the packed samples)."""
    per_pixel = _PNG_SAMPLES.get(colour, 4) * bits
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            total += h * (1 + -(-w * per_pixel // 8))
    return total


def check_png_data(path: Path) -> None:
    """Refuse a PNG whose image data inflates to fewer bytes than its IHDR declares: Pillow
    decodes such a file without an error and fills the missing rows with black. Reads the
    file chunk by chunk and inflates in 1 MiB pieces, stopping once enough has come, so
    memory stays bounded whatever the file holds."""
    import zlib

    piece = 1 << 20
    width, height, bits, colour, interlace = _png_header(path)
    expected = _png_expected_bytes(width, height, bits, colour, interlace)
    with open(path, "rb") as fh:
        fh.seek(8)
        inflate, got = zlib.decompressobj(), 0
        while got < expected and len(header := fh.read(8)) == 8:
            length, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind == b"IEND":
                break
            if kind != b"IDAT":
                fh.seek(length + 4, 1)  # the chunk's data and CRC
                continue
            left = length
            while left > 0 and got < expected:
                data = fh.read(min(left, piece))
                if not data:
                    break
                left -= len(data)
                while data and got < expected:
                    got += len(inflate.decompress(data, piece))
                    data = inflate.unconsumed_tail
            fh.seek(left + 4, 1)
    if got < expected:
        raise UsdenoiseError(f"{path}: PNG image data ends early ({got} of the {expected} bytes "
                             f"its {width} x {height} header declares: corrupt or truncated)")


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
        bits = _png_header(path)[2]
        return max(bits, 8) if mode != "P" else 8
    if img.format == "TIFF":
        tag = img.tag_v2.get(258, (8,))
        samples = tag if isinstance(tag, tuple) else (tag,)
        return max(int(b) for b in samples)
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


def open_pillow(path: Path):
    """`Image.open` with usdenoise's pixel limit instead of Pillow's decompression-bomb
    warning (on stderr) and error: the caller checks the header size with `check_pixels`."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError as exc:
            match = re.search(r"\((\d+) pixels\)", str(exc))
            check_pixel_count(path, int(match.group(1)) if match else 1 << 62)
            raise


def read_pillow(path: Path, *, raw: bool, header_only: bool) -> Decoded:
    try:
        with open_pillow(path) as img:
            n = getattr(img, "n_frames", 1) if img.format == "TIFF" else 1
            check_pixels(path, img.height, img.width, frames=n)  # before any pixel is decoded
            info = _pil_info(img, path, n)
            if header_only:
                return Decoded(np.empty((0, 0, 0, 0), np.uint8), 1.0, info)
            if img.format == "PNG":
                check_png_data(path)
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
            f"(corrupt, truncated or unsupported: {one_line(exc)})"
        ) from exc
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise UsdenoiseError(f"{path}: pages have different sizes or modes {sorted(shapes)}")
    return Decoded(np.stack(frames), scale, info)


def save_pillow_or_cv(tmp: Path, q: np.ndarray, fmt: str, **options) -> None:
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
PIL_FORMAT = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG",
               ".bmp": "BMP"}


def write_pillow(tmp: Path, a: np.ndarray, bit_depth: int, path: Path, spacing_mm) -> None:
    suffix = path.suffix.lower()
    if bit_depth > _MAX_BITS[suffix]:
        raise UsdenoiseError(f"{path}: {suffix} cannot store {bit_depth}-bit images (use .png)")
    options = {"quality": 95} if PIL_FORMAT[suffix] == "JPEG" else {}
    save_pillow_or_cv(tmp, quantize(a, bit_depth), PIL_FORMAT[suffix], **options)
