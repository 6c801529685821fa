"""Paired transforms: one random draw is applied to the image and its mask together.

A sample is the dict a data set returns (`{"image": Tensor[C,H,W], "mask": Tensor[H,W], ...}`).
Image-like entries (`IMAGE_KEYS`) are resampled with area averaging when shrinking and
bilinear interpolation when enlarging; label-like entries (`MASK_KEYS`) only ever with
nearest neighbour, so a resized mask holds exactly the class values it had before.
`spacing_mm` (row, column) is rescaled by every resize so physical lengths stay right.

    t = Compose([Resize(256), RandomCrop(224), RandomFlip()])
    sample = t(sample, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError

IMAGE_KEYS = ("image", "clean", "noisy")
MASK_KEYS = ("mask", "fan")

Sample = dict[str, Any]


def as_size(size: int | Sequence[int], *, what: str = "size") -> tuple[int, int]:
    """`256` -> (256, 256); `(240, 320)` -> (240, 320) as (height, width)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = int(size)
    else:
        try:
            height, width = (int(v) for v in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise UsdenoiseError(f"{what} {size!r}: give N or (height, width)") from None
    if height < 1 or width < 1:
        raise UsdenoiseError(f"{what} {size!r}: must be at least 1 pixel")
    return height, width


def _cv2_resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    in_h, in_w = array.shape[:2]
    if (in_h, in_w) == (height, width):
        return array
    shrink_h, shrink_w = height <= in_h, width <= in_w
    if shrink_h == shrink_w:
        interp = cv2.INTER_AREA if shrink_h else cv2.INTER_LINEAR
        return cv2.resize(array, (width, height), interpolation=interp)
    # one axis shrinks, the other grows: one pass per axis, each with its own method
    rows = cv2.resize(array, (in_w, height),
                      interpolation=cv2.INTER_AREA if shrink_h else cv2.INTER_LINEAR)
    return cv2.resize(rows, (width, height),
                      interpolation=cv2.INTER_AREA if shrink_w else cv2.INTER_LINEAR)


def resize_image(image: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Resize `[C,H,W]` or `[H,W]` float image: area when shrinking, bilinear when enlarging."""
    height, width = as_size(size)
    if tuple(image.shape[-2:]) == (height, width):
        return image
    device, dtype = image.device, image.dtype
    x = image.detach().to("cpu", torch.float32)
    if x.ndim == 2:
        out = _cv2_resize(x.numpy(), height, width)
    elif x.ndim == 3:
        arr = np.ascontiguousarray(x.permute(1, 2, 0).numpy())
        out = _cv2_resize(arr, height, width)
        out = out.reshape(height, width, -1).transpose(2, 0, 1)
    else:
        raise UsdenoiseError(f"resize_image: expected [C,H,W] or [H,W], got {list(image.shape)}")
    return torch.from_numpy(np.ascontiguousarray(out)).to(device=device, dtype=dtype)


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output pixel for nearest neighbour with pixel centres aligned."""
    idx = np.floor((np.arange(out_size) + 0.5) * (in_size / out_size)).astype(np.int64)
    return np.minimum(idx, in_size - 1)


def resize_mask(mask: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour resize of a label map `[H,W]` (or `[...,H,W]`); values are only copied."""
    height, width = as_size(size)
    in_h, in_w = mask.shape[-2:]
    if (in_h, in_w) == (height, width):
        return mask
    rows = torch.from_numpy(nearest_indices(in_h, height)).to(mask.device)
    cols = torch.from_numpy(nearest_indices(in_w, width)).to(mask.device)
    return mask.index_select(-2, rows).index_select(-1, cols)


def _scaled_spacing(spacing: Any, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Any:
    if spacing is None:
        return None
    dy, dx = spacing
    return (float(dy) * in_hw[0] / out_hw[0], float(dx) * in_hw[1] / out_hw[1])


def _spatial_size(sample: Sample) -> tuple[int, int]:
    for key in IMAGE_KEYS + MASK_KEYS:
        if key in sample and isinstance(sample[key], torch.Tensor):
            return tuple(sample[key].shape[-2:])
    raise UsdenoiseError("transform: the sample has no image or mask")


def _check_same_size(sample: Sample) -> tuple[int, int]:
    size = _spatial_size(sample)
    for key in IMAGE_KEYS + MASK_KEYS:
        value = sample.get(key)
        if isinstance(value, torch.Tensor) and tuple(value.shape[-2:]) != size:
            raise UsdenoiseError(
                f"sample {sample.get('id', '?')}: {key} is {tuple(value.shape[-2:])}, "
                f"expected {size} like the image"
            )
    return size


def resize_sample(sample: Sample, size: int | Sequence[int]) -> Sample:
    """Resize every image-like and mask-like entry of a sample; rescale `spacing_mm`."""
    out_hw = as_size(size)
    in_hw = _check_same_size(sample)
    if in_hw == out_hw:
        return sample
    out = dict(sample)
    for key in IMAGE_KEYS:
        if isinstance(out.get(key), torch.Tensor):
            out[key] = resize_image(out[key], out_hw)
    for key in MASK_KEYS:
        if isinstance(out.get(key), torch.Tensor):
            out[key] = resize_mask(out[key], out_hw)
    if "spacing_mm" in out:
        out["spacing_mm"] = _scaled_spacing(out["spacing_mm"], in_hw, out_hw)
    return out


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [0, high]."""
    return int(torch.randint(0, high + 1, (1,), generator=generator).item())


class Resize:
    """Resize image (area/bilinear) and mask (nearest) to `size` = N or (height, width)."""

    def __init__(self, size: int | Sequence[int]):
        self.size = as_size(size)

    def __call__(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        return resize_sample(sample, self.size)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class RandomCrop:
    """Crop the same random window of `size` from image and mask.

    Images smaller than `size` are padded at the bottom/right first (image with
    `fill`, mask with 0 = background) when `pad_if_needed`; otherwise that is an error.
    """

    def __init__(self, size: int | Sequence[int], *, pad_if_needed: bool = True,
                 fill: float = 0.0):
        self.size = as_size(size)
        self.pad_if_needed = pad_if_needed
        self.fill = fill

    def __call__(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        height, width = _check_same_size(sample)
        crop_h, crop_w = self.size
        out = dict(sample)
        if height < crop_h or width < crop_w:
            if not self.pad_if_needed:
                raise UsdenoiseError(
                    f"sample {sample.get('id', '?')}: {height}x{width} is smaller than the "
                    f"crop {crop_h}x{crop_w}"
                )
            pad_h, pad_w = max(crop_h - height, 0), max(crop_w - width, 0)
            for key in IMAGE_KEYS + MASK_KEYS:
                value = out.get(key)
                if isinstance(value, torch.Tensor):
                    fill = self.fill if key in IMAGE_KEYS else 0
                    out[key] = torch.nn.functional.pad(value, (0, pad_w, 0, pad_h), value=fill)
            height, width = height + pad_h, width + pad_w
        top = _randint(height - crop_h, generator)
        left = _randint(width - crop_w, generator)
        for key in IMAGE_KEYS + MASK_KEYS:
            value = out.get(key)
            if isinstance(value, torch.Tensor):
                out[key] = value[..., top:top + crop_h, left:left + crop_w]
        return out

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"


class RandomFlip:
    """Flip image and mask together: left-right with probability `p`, up-down with `p_vertical`.

    Ultrasound depth runs downwards, so vertical flips are off by default.
    """

    def __init__(self, p: float = 0.5, *, p_vertical: float = 0.0):
        for name, value in (("p", p), ("p_vertical", p_vertical)):
            if not 0.0 <= value <= 1.0:
                raise UsdenoiseError(f"RandomFlip {name}={value}: must be within [0, 1]")
        self.p = p
        self.p_vertical = p_vertical

    def __call__(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        draws = torch.rand(2, generator=generator)
        dims = []
        if draws[0].item() < self.p:
            dims.append(-1)
        if draws[1].item() < self.p_vertical:
            dims.append(-2)
        if not dims:
            return sample
        out = dict(sample)
        for key in IMAGE_KEYS + MASK_KEYS:
            value = out.get(key)
            if isinstance(value, torch.Tensor):
                out[key] = torch.flip(value, dims)
        return out

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p}, p_vertical={self.p_vertical})"


class Compose:
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[Any]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, generator=generator)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"
