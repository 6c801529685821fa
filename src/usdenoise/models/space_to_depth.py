"""Space-to-depth folding (FFDNet-style) shared by the networks: process an image as s*s
half/quarter-resolution sub-images, which cuts the cost per pixel by s*s on a CPU."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def fold(x: torch.Tensor, shuffle: int, *, multiple: int = 1) -> torch.Tensor:
    """Pad [B,C,H,W] (reflect, or replicate for tiny images) to a multiple of shuffle*multiple,
    then PixelUnshuffle: [B, C*s*s, H'/s, W'/s]."""
    h, w = x.shape[-2:]
    m = shuffle * multiple
    pad_h, pad_w = (-h) % m, (-w) % m
    if pad_h or pad_w:
        mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return F.pixel_unshuffle(x, shuffle) if shuffle > 1 else x


def unfold(y: torch.Tensor, shuffle: int, size: Sequence[int]) -> torch.Tensor:
    """Inverse of `fold`: PixelShuffle and crop back to `size` (H, W)."""
    if shuffle > 1:
        y = F.pixel_shuffle(y, shuffle)
    return y[..., : size[0], : size[1]]
