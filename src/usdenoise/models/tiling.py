"""Denoise large images in overlapping tiles with smooth blending, so memory stays bounded.

Layout: tiles of `tile` x `tile` pixels (smaller where the image is) start every
`tile - overlap` pixels; the last tile in each direction is aligned with the image edge.
Context: each tile is run with `halo` extra pixels of real image around it (where the image
has them) and the output is cropped back to the tile, so the network sees the same
neighbourhood as on the whole image. Blending: each tile's output is weighted by a separable
raised-cosine window that rises from ~0 to 1 across the `overlap` pixels along every edge
shared with a neighbour tile (edges on the image border keep weight 1); the result is
sum(w * y) / sum(w). Where two tiles meet the windows are a partition of unity
(sin² + cos² = 1), so there are no seams.

Exactness: a network whose receptive-field radius r = (receptive_field - 1) / 2 is <= `halo`
and that is translation-equivariant (plain or dilated convolutions, BatchNorm in eval mode:
DiConvAE, DnCNN) gives exactly the untiled result everywhere, image borders included, up
to float32 summation error (tested: max |difference| < 1e-5). By default `halo` is that
radius when the network reports `receptive_field` (DiConvAE `fast`: 30 px, DnCNN `fast`:
10 px), else `overlap`. For a U-Net (pooling; effective field larger than any halo) tiles
differ from the whole-image result by a small amount that shrinks as `halo` grows.
Peak memory is that of one (tile + 2 * halo)² forward pass plus two float32 images.

Automatic tiling (`tile=None`, the denoisers' default): the whole image runs in one forward
pass when it has at most `max_pixels` pixels per batch (`WHOLE_IMAGE_PIXELS`, 4 Mpx: an
800 x 540 ultrasound frame, or a batch of up to nine of them, is one pass; a DiConvAE `fast`
pass needs about 0.6 kB per pixel on CPU, so 4 Mpx stays near 2.5 GB); larger inputs are cut
into `AUTO_TILE` tiles, overlap-blended as above. Tiling a frame that fits costs time: the
halo is computed twice where tiles meet (an 800 x 540 frame in 512-px tiles with a 30-px halo
is four passes over 1.9x the pixels).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError

#: with automatic tiling, inputs of at most this many pixels (B * H * W) run in one pass
WHOLE_IMAGE_PIXELS = 4 * 1024 * 1024
#: tile side used by automatic tiling for inputs above the budget
AUTO_TILE = 1024


def _starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _window(length: int, ramp: int, *, low: bool, high: bool,
            device: torch.device) -> torch.Tensor:
    """1-D weights of `length` px; `low`/`high`: that edge is shared with a neighbour tile."""
    w = torch.ones(length, device=device)
    if ramp <= 0:
        return w
    t = (torch.arange(ramp, device=device, dtype=torch.float32) + 0.5) / ramp
    rise = torch.sin(t * math.pi / 2) ** 2
    if low:
        w[:ramp] = rise
    if high:
        w[length - ramp :] = torch.minimum(w[length - ramp :], rise.flip(0))
    return w


def _default_halo(net: nn.Module, overlap: int) -> int:
    rf = getattr(net, "receptive_field", None)
    if isinstance(rf, int) and rf > 0:
        return (rf - 1) // 2
    return overlap


@torch.no_grad()
def denoise_tiled(
    net: nn.Module,
    x: torch.Tensor,
    *,
    tile: int | None = 512,
    overlap: int = 32,
    halo: int | None = None,
    max_pixels: int = WHOLE_IMAGE_PIXELS,
) -> torch.Tensor:
    """Run `net` on `x[B,C,H,W]` tile by tile; returns `[B,C_out,H,W]` on `x`'s device.

    `tile=None` is automatic: the whole input in one pass when `B * H * W <= max_pixels`,
    else `AUTO_TILE`-pixel tiles. `halo` (default: the network's receptive-field radius,
    else `overlap`) is the context added around each tile and cropped away after. The
    network runs on the device of its first parameter (or `x`'s device if it has none).
    Images no larger than one tile are passed through in one call.
    """
    if x.ndim != 4:
        raise UsdenoiseError(f"tiling: expected a [B, C, H, W] tensor, got {tuple(x.shape)}")
    whole = tile is None and x.shape[0] * x.shape[2] * x.shape[3] <= max_pixels
    if tile is None:
        tile, overlap = AUTO_TILE, min(int(overlap), AUTO_TILE // 2)
    tile, overlap = int(tile), int(overlap)
    if tile < 8:
        raise UsdenoiseError(f"tiling: tile must be at least 8 px, got {tile}")
    if not 0 <= overlap < tile:
        raise UsdenoiseError(
            f"tiling: overlap must be in [0, tile), got overlap={overlap} with tile={tile}"
        )
    halo = _default_halo(net, overlap) if halo is None else int(halo)
    if halo < 0:
        raise UsdenoiseError(f"tiling: halo must be >= 0, got {halo}")
    try:
        device = next(net.parameters()).device
    except StopIteration:
        device = x.device
    _, _, height, width = x.shape
    if whole or (height <= tile and width <= tile):
        return net(x.to(device)).to(x.device)

    stride = tile - overlap
    th, tw = min(tile, height), min(tile, width)
    ys, xs = _starts(height, th, stride), _starts(width, tw, stride)
    out: torch.Tensor | None = None
    weight = torch.zeros(1, 1, height, width, device=x.device)
    for i, y0 in enumerate(ys):
        wy = _window(th, overlap, low=i > 0, high=i < len(ys) - 1, device=x.device)
        a0, a1 = max(0, y0 - halo), min(height, y0 + th + halo)
        for j, x0 in enumerate(xs):
            wx = _window(tw, overlap, low=j > 0, high=j < len(xs) - 1, device=x.device)
            b0, b1 = max(0, x0 - halo), min(width, x0 + tw + halo)
            y = net(x[:, :, a0:a1, b0:b1].to(device)).to(x.device)
            y = y[:, :, y0 - a0 : y0 - a0 + th, x0 - b0 : x0 - b0 + tw]
            if out is None:  # at least float32: bfloat16 tiles (autocast) sum without loss
                out = torch.zeros(x.shape[0], y.shape[1], height, width, device=x.device,
                                  dtype=torch.promote_types(y.dtype, torch.float32))
            w2 = wy[:, None] * wx[None, :]
            out[:, :, y0 : y0 + th, x0 : x0 + tw] += y * w2
            weight[:, :, y0 : y0 + th, x0 : x0 + tw] += w2
    assert out is not None  # at least one tile
    return out / weight
