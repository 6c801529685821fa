"""Segmentation networks: `SEGMENTERS` {name: class with PRESETS}, `build_segmenter`.

Every segmenter maps `x[B,in_channels,H,W]` to logits `[B,num_classes,H,W]` for any H, W and
keeps its constructor keywords in `.config`, so a checkpoint of kind "segmenter" rebuilds it
(`checkpoint.BUILDERS["segmenter"]`).

- `segnet`: SegNet written here (`usdenoise.models.segnet`).
- `unet`: MONAI's residual `UNet` (the strong reference; needs the `seg` extra). The input is
  padded (replicate) to a multiple of 2**levels and the logits cropped back.

`encoder_features(model, x)` gives the encoder's feature maps of either (the task-perceptual
loss compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from usdenoise.core.errors import UsdenoiseError, optional_import
from usdenoise.models import build_from_registry
from usdenoise.models.segnet import SegNet


class MonaiUNet(nn.Module):
    """MONAI `UNet` (residual units, strided convolutions, batch norm) with presets."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"channels": [32, 64, 128, 256, 512], "num_res_units": 2, "dropout": 0.0},
        "fast": {"channels": [8, 16, 32, 64], "num_res_units": 1, "dropout": 0.0},
    }
    DEFAULT_PRESET: ClassVar[str] = "fast"

    def __init__(self, *, in_channels: int = 1, num_classes: int = 2,
                 channels: Sequence[int] = (8, 16, 32, 64), num_res_units: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) < 2 or min(channels) < 1:
            raise UsdenoiseError(f"unet: channels needs at least two positive widths, got "
                                 f"{channels}")
        if in_channels < 1 or num_classes < 2:
            raise UsdenoiseError(f"unet: need in_channels >= 1 and num_classes >= 2, got "
                                 f"{in_channels}, {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise UsdenoiseError(f"unet: dropout must be within [0, 1), got {dropout}")
        nets = optional_import("monai.networks.nets", extra="seg")
        self.config: dict[str, Any] = {"in_channels": int(in_channels),
                                       "num_classes": int(num_classes), "channels": channels,
                                       "num_res_units": int(num_res_units),
                                       "dropout": float(dropout)}
        self.multiple = 2 ** (len(channels) - 1)
        self.net = nets.UNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes,
                             channels=channels, strides=[2] * (len(channels) - 1),
                             num_res_units=num_res_units, norm="BATCH", dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return self.net(x)[..., :h, :w]


SEGMENTERS: dict[str, type[nn.Module]] = {"segnet": SegNet, "unet": MonaiUNet}


def encoder_features(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Encoder feature maps of a segmenter, shallowest first.

    SegNet: the pooled output of every encoder stage (`channels[i]` maps at H / 2**(i+1)).
    MonaiUNet: the output of every down layer (`channels[i]` at H / 2**(i+1) of the padded
    input) and then the bottom layer (`channels[-1]`, same size as the last down layer).
    """
    if isinstance(model, SegNet):
        if min(x.shape[-2:]) < 2 ** len(model.encoder):
            raise UsdenoiseError(
                f"segnet: input {tuple(x.shape[-2:])} is smaller than 2**{len(model.encoder)} "
                "pixels (one halving per stage)")
        return [pooled for pooled, _, _ in model.encode(x)]
    if isinstance(model, MonaiUNet):
        from monai.networks.layers import SkipConnection

        h, w = x.shape[-2:]
        ph, pw = (-h) % model.multiple, (-w) % model.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        # MONAI nests each level as Sequential(down, SkipConnection(next level), up); the
        # innermost SkipConnection holds the bottom layer instead of another Sequential
        block, features = model.net.model, []
        while True:
            x = block[0](x)
            features.append(x)
            inner = block[1].submodule
            if type(inner) is nn.Sequential and isinstance(inner[1], SkipConnection):
                block = inner
                continue
            features.append(inner(x))
            return features
    raise UsdenoiseError(f"no encoder known for {type(model).__name__} (use segnet or unet)")


def build_segmenter(arch: str, preset: str | None = None, **overrides: Any) -> nn.Module:
    """`build_segmenter("unet", "fast", num_classes=2)`; `preset=None` takes the class default."""

    return build_from_registry(SEGMENTERS, arch, preset, overrides,
                               what="segmentation architecture")


def segmenter_from_config(arch: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild from a checkpoint's `config` (the full constructor keywords)."""
    key = str(arch).strip().lower()
    if key not in SEGMENTERS:
        raise UsdenoiseError(f"unknown segmentation architecture {arch!r} "
                             f"(known: {', '.join(sorted(SEGMENTERS))})")
    try:
        return SEGMENTERS[key](**config)
    except UsdenoiseError:
        raise
    except (TypeError, ValueError) as exc:
        raise UsdenoiseError(f"{key}: bad configuration {config}: {exc}") from None
