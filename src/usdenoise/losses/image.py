"""Image losses: L1, L2, 1 - SSIM, 1 - MS-SSIM and the VGG16 perceptual loss (see
`usdenoise.losses`)."""

from __future__ import annotations

import os
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.tensors import check_batch
from usdenoise.metrics import ms_ssim, ssim
from usdenoise.models.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG16Features


class Loss(nn.Module):
    """Base class: `forward(pred, target, **extra) -> scalar`."""

    requires: ClassVar[tuple[str, ...]] = ()
    extra_inputs: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""


def check_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    check_batch(pred, f"loss {name}: pred", floating=False)
    check_batch(target, f"loss {name}: target", floating=False)
    if pred.shape != target.shape:
        raise UsdenoiseError(
            f"loss {name}: pred and target must be [B, C, H, W] of the same shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )


class L1Loss(Loss):
    """Mean absolute error."""

    summary = "mean absolute error"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, "l1")
        return (pred - target).abs().mean()


class L2Loss(Loss):
    """Mean squared error."""

    summary = "mean squared error"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, "l2")
        return (pred - target).pow(2).mean()


class SSIMLoss(Loss):
    """1 - SSIM (Gaussian window, sigma 1.5, data range 1)."""

    summary = "1 - SSIM (Gaussian 11x11 window)"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, "ssim")
        side = min(pred.shape[-2:])
        win = min(11, side if side % 2 else side - 1)
        return 1.0 - ssim(pred, target, data_range=1.0, win_size=win).mean()


class MSSSIMLoss(Loss):
    """1 - MS-SSIM; fewer scales (renormalised weights) under 161 px."""

    summary = "1 - MS-SSIM (fewer scales, renormalised weights, under 161 px)"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, "msssim")
        return 1.0 - ms_ssim(pred, target, data_range=1.0).mean()


class PerceptualLoss(Loss):
    """Mean squared difference of frozen VGG16 features (ImageNet weights from a local file)."""

    summary = "VGG16 feature distance (relu1_2, relu2_2, relu3_3); needs --vgg-weights"
    requires = ("vgg_weights",)
    mean: torch.Tensor  # ImageNet normalisation buffers, registered in __init__
    std: torch.Tensor

    def __init__(
        self,
        *,
        vgg_weights: str | os.PathLike[str] | None = None,
        layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3"),
    ) -> None:
        super().__init__()
        self.vgg = VGG16Features(layers)
        self.vgg.load_weights(vgg_weights)  # None -> the error that says how to get weights
        self.vgg.eval()
        for p in self.vgg.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # the feature extractor is frozen
        return self

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, "perceptual")
        fp = self.vgg(self._prep(pred))
        with torch.no_grad():
            ft = self.vgg(self._prep(target))
        losses = [F.mse_loss(fp[k], ft[k]) for k in self.vgg.layers]
        return torch.stack(losses).mean()
