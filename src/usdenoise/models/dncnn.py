"""DnCNN (Zhang et al., 2017): a plain conv stack that predicts the noise, output = x - noise.

Layer 1 is Conv+ReLU, layers 2..depth-1 are Conv+BatchNorm+ReLU, the last layer is a Conv
back to one channel; all 3 x 3, padding 1, so any H x W is kept. ``paper`` is the published
DnCNN-S (17 layers, 64 channels, about 556 k parameters, receptive field 35 px); ``fast`` is
a narrower, shallower version for CPU use. Residual learning is always on (it is what DnCNN
is); the output is not clamped here, `Denoiser.denoise` clamps to [0, 1].
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError


class DnCNN(nn.Module):
    """`forward(x[B,1,H,W]) -> x - f(x)`, any H, W."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"channels": 64, "depth": 17, "in_channels": 1},
        "fast": {"channels": 32, "depth": 10, "in_channels": 1},
    }
    DEFAULT_PRESET: ClassVar[str] = "fast"

    def __init__(self, *, channels: int = 32, depth: int = 10, in_channels: int = 1,
                 level_input: bool = False) -> None:
        super().__init__()
        if depth < 2 or channels < 1:
            raise UsdenoiseError(
                f"dncnn: need depth >= 2 and channels >= 1, got depth={depth}, channels={channels}"
            )
        self.config: dict[str, Any] = {
            "channels": int(channels),
            "depth": int(depth),
            "in_channels": int(in_channels),
        }
        if level_input:  # a second input channel: the speckle level map (noise.level)
            self.config["level_input"] = True
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels + int(bool(level_input)), channels, 3, padding=1),
            nn.ReLU(inplace=True),
        ]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        last = nn.Conv2d(channels, in_channels, 3, padding=1)
        layers.append(last)
        self.body = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # start close to the identity mapping (predicted noise ~ 0)
        nn.init.normal_(last.weight, std=1e-3)

    @property
    def receptive_field(self) -> int:
        return 1 + 2 * self.config["depth"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.config["in_channels"]] - self.body(x)
