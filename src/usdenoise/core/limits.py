"""The one pixel limit every reader checks before it decodes anything.

A header is cheap to read and can lie: a 177 KB MetaImage, a PNG of a few kilobytes or a
DICOM file can declare an image of 13,500 x 13,500 pixels that would take gigabytes once
decoded (a "decompression bomb"). Every reader in `usdenoise.io` therefore reads the header
first and calls :func:`check_pixels` with the size it declares, and only then decodes.

* :data:`MAX_FRAME_PIXELS` -- at most 50 megapixels per frame (height x width), about
  7,000 x 7,000; the largest ultrasound frames are a few megapixels.
* :data:`MAX_TOTAL_PIXELS` -- at most 500 megapixels per file over all frames and channels
  (a cine loop of 500 frames of 1000 x 1000 gray pixels; 2 GB as float32).

Both are module constants, so a program that needs more can raise them
(``usdenoise.core.limits.MAX_FRAME_PIXELS = ...``) before it reads.
"""

from __future__ import annotations

import math
import os
from typing import Any

from usdenoise.core.errors import UsdenoiseError

MAX_FRAME_PIXELS = 50_000_000
MAX_TOTAL_PIXELS = 500_000_000


def _count(value: Any, path: str | os.PathLike, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise UsdenoiseError(f"{path}: header declares a {what} of {value!r}, "
                             "not a whole number") from None
    if number < 0:
        raise UsdenoiseError(f"{path}: header declares a negative {what} ({number})")
    return number


def check_pixels(path: str | os.PathLike, height: Any, width: Any, *, frames: Any = 1,
                 channels: Any = 1) -> None:
    """Raise a one-line UsdenoiseError if the declared size is over the limits (or absurd).

    Call it with the values straight from the header, before any pixel is decoded.
    """
    h, w = _count(height, path, "height"), _count(width, path, "width")
    f = max(1, _count(frames if frames not in (None, "") else 1, path, "frame count"))
    c = max(1, _count(channels if channels not in (None, "") else 1, path, "channel count"))
    per_frame = h * w
    if per_frame > MAX_FRAME_PIXELS:
        raise UsdenoiseError(
            f"{path}: image of {h} x {w} pixels ({per_frame / 1e6:.0f} megapixels) is over "
            f"the limit of {MAX_FRAME_PIXELS / 1e6:.0f} megapixels per frame "
            "(usdenoise.core.limits.MAX_FRAME_PIXELS)"
        )
    total = per_frame * f * c
    if total > MAX_TOTAL_PIXELS:
        raise UsdenoiseError(
            f"{path}: {f} frame(s) of {h} x {w} x {c} ({total / 1e6:.0f} megapixels in all) "
            f"is over the limit of {MAX_TOTAL_PIXELS / 1e6:.0f} megapixels per file "
            "(usdenoise.core.limits.MAX_TOTAL_PIXELS)"
        )


def check_array_shape(path: str | os.PathLike, shape: tuple[int, ...]) -> None:
    """The pixel limit for an array file (`.npy`): its layouts as the reader reads them."""
    dims = tuple(shape)
    if len(dims) == 2:
        check_pixels(path, dims[0], dims[1])
    elif len(dims) == 3 and dims[0] in (1, 3, 4):
        check_pixels(path, dims[1], dims[2], channels=dims[0])
    elif len(dims) == 4:
        check_pixels(path, dims[2], dims[3], frames=dims[0], channels=dims[1])
    total = math.prod(dims) if dims else 1
    if total > MAX_TOTAL_PIXELS * 4:
        raise UsdenoiseError(
            f"{path}: array of shape {dims} ({total / 1e6:.0f} million values) is over the "
            f"limit of {MAX_TOTAL_PIXELS / 1e6:.0f} megapixels per file "
            "(usdenoise.core.limits.MAX_TOTAL_PIXELS)"
        )


def check_pixel_count(path: str | os.PathLike, pixels: int) -> None:
    """The per-frame limit for a reader that only knows the pixel count (not H and W)."""
    if pixels > MAX_FRAME_PIXELS:
        raise UsdenoiseError(
            f"{path}: image of {pixels / 1e6:.0f} megapixels is over the limit of "
            f"{MAX_FRAME_PIXELS / 1e6:.0f} megapixels per frame "
            "(usdenoise.core.limits.MAX_FRAME_PIXELS)"
        )
