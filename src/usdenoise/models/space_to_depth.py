"""Space-to-depth folding (FFDNet-style) shared by the networks: process an image as s*s
half/quarter-resolution sub-images, which cuts the cost per pixel by s*s on a CPU."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def split_lattices(x: torch.Tensor, stride: int) -> torch.Tensor:
    """[B, C, H, W] (H, W multiples of `stride`) -> [B·s², C, H/s, W/s]: the sub-lattices
    `x[..., r::s, c::s]`, image-major, lattice (r, c) in row-major order."""
    b, c, h, w = x.shape
    folded = F.pixel_unshuffle(x, stride)  # [B, C·s², H/s, W/s] in (c, r, q) order
    lattices = folded.reshape(b, c, stride * stride, h // stride, w // stride).transpose(1, 2)
    return lattices.reshape(b * stride * stride, c, h // stride, w // stride)


def merge_lattices(y: torch.Tensor, stride: int) -> torch.Tensor:
    """Inverse of `split_lattices`: [B·s², C, h, w] -> [B, C, h·s, w·s]."""
    n, c, h, w = y.shape
    y = y.reshape(n // (stride * stride), stride * stride, c, h, w).transpose(1, 2)
    return F.pixel_shuffle(y.reshape(-1, c * stride * stride, h, w), stride)


def lattice_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                  stride: int) -> torch.Tensor:
    """Run `fn` on the `stride²` sub-lattices `x[..., r::s, c::s]` of [B,C,H,W] (as a batch)
    and put its outputs back in place: pixel-shuffle-downsampled inference (AP-BSN, Lee et
    al., CVPR 2022), for networks trained where speckle grain below `stride` is nearly white.
    The image is padded to a multiple of `stride` (as `fold`) and cropped back."""
    if stride <= 1:
        return fn(x)
    h, w = x.shape[-2:]
    padded = fold(x, 1, multiple=stride)
    return merge_lattices(fn(split_lattices(padded, stride)), stride)[..., :h, :w]
