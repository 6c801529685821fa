"""DiConvAE: the Dilated Convolutional Autoencoder of Karaoğlu et al. (2022).

What the study fixes, and this module follows:
  * an encoder of 4 ``Conv2d`` layers, each followed by ReLU, BatchNorm and Dropout;
  * dilated convolutions (they widen the receptive field without pooling, so speckle, whose
    grain spans several pixels, is seen in context);
  * a decoder that mirrors the encoder;
  * a sigmoid output, so the denoised image lies in [0, 1];
  * 256 x 256 grayscale training images, Adam with learning rate 1e-3.

What the study leaves open, and what we picked (all of it is a constructor argument):
  * channel widths: not reported. ``paper`` uses 64-128-128-256 (about 1.0 M parameters);
    ``fast`` uses 16-32-32-64 (about 65 k parameters, for a laptop CPU; measured speed in
    docs/sections/networks.md).
  * kernel size: 3 x 3.
  * dilation rates: not reported. We use 1, 2, 4, 8 in the encoder (receptive field grows
    1 -> 3 -> 7 -> 15 -> 31 px) and the mirror 8, 4, 2, 1 in the decoder; the whole net then
    sees a 61 x 61 px window.
  * order inside a block: Conv -> BatchNorm -> ReLU -> Dropout (the common modern order; the
    paper lists the three operations without fixing their order).
  * dropout rate: not reported; 0.1 for ``paper``, 0.05 for ``fast``, as channel-wise
    ``Dropout2d`` (element-wise dropout on conv features mostly acts as noise injection).
  * down-sampling: none. Padding equals the dilation, so every layer keeps H x W and the
    network accepts any image size without cropping or resizing.
  * decoder layers are ordinary (dilated) convolutions, not transposed convolutions: with no
    down-sampling there is nothing to up-sample, and the mirror is in widths and dilations.
  * the last decoder layer has no BatchNorm/ReLU/Dropout; it feeds the sigmoid.
  * optional residual modes (an extension, default off to stay faithful):
      ``"speckle"`` - the decoder predicts the noise n and the output is ``x - n``
      (DnCNN-style residual learning; no sigmoid, the Denoiser clamps to [0, 1]);
      ``"log"`` - the input is moved to the log domain, where multiplicative speckle becomes
      additive, the decoder predicts the log-speckle n and the output is
      ``exp(log(x + eps) - n) - eps``.
  * optional space-to-depth (``shuffle=2`` or ``4``, an extension for CPU speed, as in FFDNet):
    the image is folded into shuffle^2 sub-images (``PixelUnshuffle``) that the dilated stack
    processes together at 1/shuffle the resolution, then unfolded (``PixelShuffle``). The
    receptive field in input pixels grows by the same factor and the cost per pixel drops by
    shuffle^2 for the same widths. Sizes that are not multiples are reflect-padded and cropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.models.space_to_depth import fold, unfold

RESIDUAL_MODES = ("none", "speckle", "log")
LOG_EPS = 1e-2


def _as_list(value: int | Sequence[int], depth: int, what: str) -> list[int]:
    if isinstance(value, int):
        return [int(value)] * depth
    values = [int(v) for v in value]
    if len(values) != depth:
        raise UsdenoiseError(
            f"diconvae: {what} has {len(values)} entries but depth is {depth}"
        )
    return values


def _block(cin: int, cout: int, dilation: int, dropout: float, kernel_size: int) -> nn.Sequential:
    pad = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
    )


class DiConvAE(nn.Module):
    """Dilated convolutional autoencoder; `forward(x[B,1,H,W]) -> [B,1,H,W]` for any H, W."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {
            "channels": [64, 128, 128, 256],
            "dilations": [1, 2, 4, 8],
            "depth": 4,
            "dropout": 0.1,
            "residual": "none",
            "kernel_size": 3,
            "in_channels": 1,
            "shuffle": 1,
        },
        "fast": {
            "channels": [16, 32, 32, 64],
            "dilations": [1, 2, 4, 8],
            "depth": 4,
            "dropout": 0.05,
            "residual": "none",
            "kernel_size": 3,
            "in_channels": 1,
            "shuffle": 1,
        },
    }
    DEFAULT_PRESET: ClassVar[str] = "fast"

    def __init__(
        self,
        *,
        channels: int | Sequence[int] = (16, 32, 32, 64),
        dilations: int | Sequence[int] = (1, 2, 4, 8),
        depth: int = 4,
        dropout: float = 0.05,
        residual: str = "none",
        kernel_size: int = 3,
        in_channels: int = 1,
        shuffle: int = 1,
        level_input: bool = False,
    ) -> None:
        super().__init__()
        shuffle = int(shuffle)
        if shuffle not in (1, 2, 4):
            raise UsdenoiseError(f"diconvae: shuffle must be 1, 2 or 4, got {shuffle}")
        depth = int(depth)
        if depth < 1:
            raise UsdenoiseError(f"diconvae: depth must be >= 1, got {depth}")
        chans = _as_list(channels, depth, "channels")
        dils = _as_list(dilations, depth, "dilations")
        if min(chans) < 1 or min(dils) < 1:
            raise UsdenoiseError("diconvae: channels and dilations must be positive")
        if not 0.0 <= float(dropout) < 1.0:
            raise UsdenoiseError(f"diconvae: dropout must be in [0, 1), got {dropout}")
        if residual not in RESIDUAL_MODES:
            raise UsdenoiseError(
                f"diconvae: residual {residual!r} is not one of {list(RESIDUAL_MODES)}"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise UsdenoiseError(f"diconvae: kernel_size must be odd, got {kernel_size}")
        self.config: dict[str, Any] = {
            "channels": chans,
            "dilations": dils,
            "depth": depth,
            "dropout": float(dropout),
            "residual": residual,
            "kernel_size": int(kernel_size),
            "in_channels": int(in_channels),
            "shuffle": shuffle,
        }
        if level_input:  # a second input channel: the speckle level map (noise.level)
            self.config["level_input"] = True
        self.residual = residual
        self.shuffle = shuffle
        enc: list[nn.Module] = []
        cin = (in_channels + int(bool(level_input))) * shuffle * shuffle
        for c, d in zip(chans, dils, strict=True):
            enc.append(_block(cin, c, d, dropout, kernel_size))
            cin = c
        self.encoder = nn.Sequential(*enc)
        # mirror: widths chans[-2], ..., chans[0], then the output layer; dilations reversed
        dec: list[nn.Module] = []
        widths = chans[-2::-1]
        for c, d in zip(widths, dils[:0:-1], strict=True):
            dec.append(_block(cin, c, d, dropout, kernel_size))
            cin = c
        self.decoder = nn.Sequential(*dec)
        d_last = dils[0]
        self.head = nn.Conv2d(
            cin, in_channels * shuffle * shuffle, kernel_size,
            padding=d_last * (kernel_size // 2), dilation=d_last,
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # residual heads start near "no correction", so training starts from the identity
        if self.residual != "none":
            nn.init.normal_(self.head.weight, std=1e-3)

    @property
    def receptive_field(self) -> int:
        k = self.config["kernel_size"] - 1
        dils = self.config["dilations"]
        # encoder d1..dD, decoder dD..d2, head d1: every dilation counted twice
        return (1 + k * 2 * sum(dils)) * self.shuffle

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder, decoder and head, at 1/shuffle resolution when space-to-depth is on."""
        folded = fold(x, self.shuffle)
        return unfold(self.head(self.decoder(self.encoder(folded))), self.shuffle, x.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_image = self.config["in_channels"]
        x, level = x[:, :n_image], x[:, n_image:]  # level: the level map, or nothing
        if self.residual == "log":
            z = torch.log(x.clamp_min(0) + LOG_EPS)
            # centre the log image roughly on 0 (log range is [log eps, log(1+eps)])
            z0 = (z - math.log(LOG_EPS) / 2) / (-math.log(LOG_EPS) / 2)
            n = self._body(torch.cat([z0, level], 1))
            return torch.exp(z - n) - LOG_EPS
        h = self._body(torch.cat([x, level], 1))
        if self.residual == "speckle":
            return x - h
        return torch.sigmoid(h)
