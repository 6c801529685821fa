"""A small denoising U-Net (Ronneberger et al. 2015 layout, sized for denoising).

Each level has two 3 x 3 Conv+BatchNorm+ReLU layers; down-sampling by 2 x 2 max-pooling,
up-sampling by a 1 x 1 conv and bilinear interpolation (the two commute), then concatenation
with the skip connection. The input is padded (replicate) up to a multiple of 2**levels and
the output cropped back, so any H x W works. With ``residual=True`` (default) the net
predicts the noise and returns ``x - noise``; otherwise a sigmoid output in [0, 1].
``shuffle=2`` folds the image into 4 half-resolution sub-images first (space-to-depth, as in
FFDNet): 4x less work per pixel.
`level_input=True` adds a second input channel, the speckle level map (FFDNet style, see
`usdenoise.noise.level`): the input is `[B, 2, H, W]`, the output `[B, 1, H, W]`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.models.space_to_depth import fold, unfold


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """`forward(x[B,1,H,W]) -> [B,1,H,W]`, any H, W."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"channels": 32, "levels": 3, "residual": True, "in_channels": 1, "shuffle": 1},
        "fast": {"channels": 8, "levels": 3, "residual": True, "in_channels": 1, "shuffle": 1},
    }
    DEFAULT_PRESET: ClassVar[str] = "fast"

    def __init__(
        self, *, channels: int = 8, levels: int = 3, residual: bool = True, in_channels: int = 1,
        shuffle: int = 1, level_input: bool = False,
    ) -> None:
        super().__init__()
        if levels < 1 or channels < 1:
            raise UsdenoiseError(
                f"unet: need levels >= 1 and channels >= 1, got levels={levels}, "
                f"channels={channels}"
            )
        self.config: dict[str, Any] = {
            "channels": int(channels),
            "levels": int(levels),
            "residual": bool(residual),
            "in_channels": int(in_channels),
            "shuffle": int(shuffle),
        }
        if level_input:
            self.config["level_input"] = True
        if shuffle not in (1, 2, 4):
            raise UsdenoiseError(f"unet: shuffle must be 1, 2 or 4, got {shuffle}")
        folded = in_channels * shuffle * shuffle
        widths = [channels * 2**i for i in range(levels + 1)]
        self.inc = _double_conv((in_channels + int(bool(level_input))) * shuffle**2, widths[0])
        self.down = nn.ModuleList(_double_conv(widths[i], widths[i + 1]) for i in range(levels))
        self.up_proj = nn.ModuleList(
            nn.Conv2d(widths[i + 1], widths[i], 1) for i in reversed(range(levels))
        )
        self.up = nn.ModuleList(
            _double_conv(2 * widths[i], widths[i]) for i in reversed(range(levels))
        )
        self.head = nn.Conv2d(widths[0], folded, 1)
        if residual:
            nn.init.normal_(self.head.weight, std=1e-3)
            assert self.head.bias is not None  # nn.Conv2d's default bias=True
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shuffle = self.config["shuffle"]
        skips = [self.inc(fold(x, shuffle, multiple=2 ** self.config["levels"]))]
        for down in self.down:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for proj, up in zip(self.up_proj, self.up, strict=True):
            skip = skips.pop()
            # the 1x1 projection commutes with bilinear up-sampling (both linear, the weights
            # sum to 1): applied first it runs on 4x fewer pixels and halves what is up-sampled
            y = F.interpolate(proj(y), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([skip, y], dim=1))
        y = unfold(self.head(y), shuffle, x.shape[-2:])
        if self.config["residual"]:
            return x[:, : self.config["in_channels"]] - y
        return torch.sigmoid(y)
