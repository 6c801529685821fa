"""segmentation.predict: class maps back at the image's size, overlays."""

from __future__ import annotations

import torch
from torch import nn

from usdenoise.segmentation.predict import PALETTE, overlay, predict


class _HalfSplit(nn.Module):
    """Class 1 on the right half of a tiny image, class 0 elsewhere (fixed logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 2, *x.shape[-2:])
        logits[:, 1, :, x.shape[-1] // 2:] = 1.0
        return logits


def test_predict_resizes_by_nearest_neighbour() -> None:
    pred = predict(_HalfSplit(), torch.rand(1, 1, 4, 4), out_size=(8, 12))
    assert pred.shape == (1, 8, 12) and set(pred.unique().tolist()) == {0, 1}
    assert (pred[0, :, :6] == 0).all() and (pred[0, :, 6:] == 1).all()  # no mixed labels


def test_overlay_tints_classes_and_draws_the_true_border() -> None:
    image = torch.full((1, 16, 16), 0.5)
    pred = torch.zeros(16, 16, dtype=torch.long)
    pred[4:12, 4:12] = 1
    rgb = overlay(image, pred, pred)
    assert rgb.shape == (3, 16, 16)
    inside = rgb[:, 8, 8]
    expected = 0.55 * 0.5 + 0.45 * torch.tensor(PALETTE[0])
    assert torch.allclose(inside, expected, atol=1e-6)
    assert torch.allclose(rgb[:, 4, 8], torch.tensor([0.1, 1.0, 0.1]))  # border in green
    assert torch.allclose(rgb[:, 0, 0], torch.full((3,), 0.5))
