"""SegNet (Badrinarayanan, Kendall and Cipolla, TPAMI 2017), written here.

A VGG-style encoder: stages of 3 x 3 Conv+BatchNorm+ReLU layers, each stage ending in a
2 x 2 max-pool that *returns its indices*. The decoder mirrors it: every stage starts with
`MaxUnpool2d` driven by the indices of the matching encoder pool (values go back to the
positions the maxima came from, everything else is zero; no learned up-sampling and no
skip features), followed by convolutions that densify the sparse map. A final 1 x 1
convolution gives one logit map per class.

Unpooling is given the pre-pool size, so any H x W works (odd sizes included).
`paper` is the original 13-layer VGG16 encoder (64-128-256-512-512, 2-2-3-3-3 convs);
`fast` is a 3-stage, 8-16-32 channel version that trains on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError


def _conv_block(cin: int, cout: int, count: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(count):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
                   nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SegNet(nn.Module):
    """`forward(x[B,in_channels,H,W]) -> logits[B,num_classes,H,W]`."""

    summary: ClassVar[str] = (
        "SegNet (Badrinarayanan et al.): VGG-style encoder, max-pool indices drive the decoder"
    )

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"channels": [64, 128, 256, 512, 512], "convs": [2, 2, 3, 3, 3]},
        "fast": {"channels": [8, 16, 32], "convs": 2},  # an int: any --model-param channels=
    }
    DEFAULT_PRESET: ClassVar[str] = "fast"

    def __init__(self, *, in_channels: int = 1, num_classes: int = 2,
                 channels: Sequence[int] = (8, 16, 32), convs: Sequence[int] | int = 2) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        counts = [int(convs)] * len(channels) if isinstance(convs, int) else [int(c) for c in convs]
        if not channels or min(channels) < 1:
            raise UsdenoiseError(f"segnet: channels must be positive numbers, got {channels}")
        if len(counts) != len(channels) or min(counts) < 1:
            raise UsdenoiseError(
                f"segnet: convs needs one count >= 1 per stage ({len(channels)}), got {counts}"
            )
        if in_channels < 1 or num_classes < 2:
            raise UsdenoiseError(
                f"segnet: need in_channels >= 1 and num_classes >= 2, got {in_channels}, "
                f"{num_classes}"
            )
        self.config: dict[str, Any] = {"in_channels": int(in_channels),
                                       "num_classes": int(num_classes),
                                       "channels": channels, "convs": counts}
        widths = [in_channels, *channels]
        self.encoder = nn.ModuleList(
            _conv_block(widths[i], widths[i + 1], counts[i]) for i in range(len(channels)))
        # decoder stage i (deepest first) ends with the width of the encoder stage above it
        self.decoder = nn.ModuleList()
        for i in reversed(range(len(channels))):
            out = channels[i - 1] if i > 0 else channels[0]
            layers = [_conv_block(channels[i], channels[i], counts[i] - 1)] if counts[i] > 1 else []
            layers.append(_conv_block(channels[i], out, 1))
            self.decoder.append(nn.Sequential(*layers))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.classifier = nn.Conv2d(channels[0], num_classes, 1)

    def encode(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Size]]:
        """Per stage: (pooled features, pool indices, size before pooling)."""
        out = []
        for stage in self.encoder:
            x = stage(x)
            size = x.shape
            x, indices = self.pool(x)
            out.append((x, indices, size))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 2 ** len(self.encoder):
            raise UsdenoiseError(
                f"segnet: input {tuple(x.shape[-2:])} is smaller than 2**{len(self.encoder)} "
                "pixels (one halving per stage)"
            )
        stages = self.encode(x)
        y = stages[-1][0]
        for (_, indices, size), decode in zip(reversed(stages), self.decoder, strict=True):
            y = decode(self.unpool(y, indices, output_size=size[-2:]))
        return self.classifier(y)
