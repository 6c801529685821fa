"""Prediction of class maps at each image's own size, and coloured overlays of them."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from usdenoise.data.transforms import resize_mask

PALETTE = ((1.0, 0.2, 0.2), (0.2, 0.5, 1.0), (1.0, 0.8, 0.1), (0.8, 0.2, 1.0), (0.1, 0.9, 0.9))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, out_size: Sequence[int] | None = None
            ) -> torch.Tensor:
    """Class maps `[B,H,W]` (argmax of the logits) for images `x[B,1,h,w]`; with `out_size`
    the maps are resized to it by nearest neighbour (never interpolated)."""
    device = next(model.parameters()).device
    pred = model(x.to(device).float()).argmax(1).cpu()
    if out_size is not None:
        pred = resize_mask(pred, tuple(out_size))
    return pred


def overlay(image: torch.Tensor, pred: torch.Tensor, true: torch.Tensor | None = None
            ) -> torch.Tensor:
    """RGB `[3,H,W]`: the gray image, predicted classes tinted, the true border in green."""
    gray = image[0].float().clamp(0, 1).cpu().numpy()
    rgb = np.repeat(gray[None], 3, axis=0)
    p = pred.cpu().numpy()
    for c in range(1, int(p.max()) + 1 if p.size else 1):
        colour = np.array(PALETTE[(c - 1) % len(PALETTE)])[:, None]
        where = p == c
        rgb[:, where] = 0.55 * rgb[:, where] + 0.45 * colour
    if true is not None:
        t = true.cpu().numpy().astype(np.uint8)
        border = np.zeros_like(t)
        for c in range(1, int(t.max()) + 1 if t.size else 1):
            contours, _ = cv2.findContours((t == c).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(border, contours, -1, 1, thickness=max(1, min(t.shape) // 200))
        rgb[:, border > 0] = np.array([0.1, 1.0, 0.1])[:, None]
    return torch.from_numpy(rgb.astype(np.float32))
