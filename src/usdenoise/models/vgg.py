"""VGG16 convolutional layers for the perceptual loss, loadable from torchvision's checkpoint.

The layer list and state-dict keys (`features.0.weight`, `features.0.bias`, `features.2.weight`,
... `features.28.bias`) are those of `torchvision.models.vgg16`, so the standard ImageNet file
`vgg16-397923af.pth` (read with `torch.load(weights_only=True)`, never a full unpickle) or a
safetensors export of it loads as is; the classifier keys in those files are ignored. Only the
layers up to the deepest requested feature are built. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError

# torchvision's "D" configuration
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)

#: feature name -> index of that ReLU in `features`
VGG16_LAYERS: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

HOW_TO_GET = (
    "download torchvision's ImageNet VGG16 weights once, e.g. "
    "https://download.pytorch.org/models/vgg16-397923af.pth (528 MB), and pass the file with "
    "--vgg-weights PATH (vgg_weights=PATH); a .safetensors export of it works too"
)


def _make_features(upto: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in VGG16_CFG:
        if len(layers) > upto:
            break
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(cin, int(v), kernel_size=3, padding=1))
            layers.append(nn.ReLU(inplace=False))
            cin = int(v)
    return nn.Sequential(*layers[: upto + 1])


class VGG16Features(nn.Module):
    """`forward(x[B,3,H,W]) -> {name: feature map}` for the requested ReLU outputs.

    The input is expected ImageNet-normalised RGB; `PerceptualLoss` does that conversion.
    """

    def __init__(self, layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3")) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG16_LAYERS]
        if unknown or not layers:
            raise UsdenoiseError(
                f"vgg16: unknown feature layer {unknown[0] if unknown else '(none)'!r} "
                f"(known: {', '.join(VGG16_LAYERS)})"
            )
        self.layers = tuple(layers)
        self._taps = {VGG16_LAYERS[name]: name for name in layers}
        self.features = _make_features(max(self._taps))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                out[self._taps[i]] = x
        return out

    def load_weights(self, path: str | os.PathLike[str] | None) -> None:
        """Load the matching `features.*` tensors from a torchvision-style VGG16 file (None:
        the error that says how to get one)."""
        state = read_vgg16_state(path)
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise UsdenoiseError(
                f"{path}: not a VGG16 state dict (no {missing[0]!r}; expected torchvision "
                "vgg16 keys features.0.weight, ...)"
            )
        for key, value in own.items():
            if tuple(state[key].shape) != tuple(value.shape):
                raise UsdenoiseError(
                    f"{path}: {key} has shape {tuple(state[key].shape)}, VGG16 needs "
                    f"{tuple(value.shape)} (is this VGG16?)"
                )
        self.load_state_dict({k: state[k].float() for k in own}, strict=True)


def read_vgg16_state(path: str | os.PathLike[str] | None) -> dict[str, torch.Tensor]:
    """Read a VGG16 state dict from `.pth`/`.pt` (weights-only) or `.safetensors`."""
    if path is None:
        raise UsdenoiseError(f"perceptual loss needs VGG16 weights: {HOW_TO_GET}")
    p = Path(path)
    if not p.is_file():
        raise UsdenoiseError(f"{p}: VGG16 weights file not found; {HOW_TO_GET}")
    state: Any  # safetensors gives a dict of tensors; torch.load whatever the file holds
    if p.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(p))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise UsdenoiseError(f"{p}: cannot read VGG16 safetensors ({exc})") from None
    else:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure of the restricted unpickler
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsdenoiseError(
                f"{p}: cannot read VGG16 weights (weights-only load: {first})"
            ) from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsdenoiseError(f"{p}: VGG16 weights file does not hold a state dict")
    # accept a features-only export ("0.weight") as well as the full model ("features.0.weight")
    if not any(str(k).startswith("features.") for k in state):
        state = {f"features.{k}": v for k, v in state.items()}
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
