"""Make a loaded network fast to run, without changing what it computes.

Two transformations, both exact up to float rounding (tested against the original model):
- every `Conv2d` directly followed by a `BatchNorm2d` inside an `nn.Sequential` is folded into
  one conv (`torch.nn.utils.fusion.fuse_conv_bn_eval`; valid in eval mode only);
- the weights are stored channels-last, and `to_channels_last` gives the input the same
  layout: oneDNN's convolutions on CPU are about 2x faster for these narrow (8-64 channel)
  networks in that layout (benchmarks/frame_speed.py).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# cuDNN and oneDNN both have channels-last kernels; other back-ends keep the default layout
_CHANNELS_LAST_DEVICES = ("cpu", "cuda")


def _fold_sequential(seq: nn.Sequential) -> None:
    children = list(seq.children())
    folded: list[nn.Module] = []
    i = 0
    while i < len(children):
        conv = children[i]
        bn = children[i + 1] if i + 1 < len(children) else None
        if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d
                and bn.track_running_stats and bn.running_mean is not None):
            folded.append(fuse_conv_bn_eval(conv, bn))
            i += 2
        else:
            folded.append(conv)
            i += 1
    if len(folded) != len(children):
        for name in list(seq._modules):
            del seq._modules[name]
        for k, module in enumerate(folded):
            seq.add_module(str(k), module)


def prepare_for_inference(net: nn.Module) -> nn.Module:
    """`net` in eval mode with Conv+BatchNorm pairs folded and channels-last weights where
    the device has such kernels. Changes `net` in place (and returns it): only for a model
    loaded to run, never one that is trained further."""
    net.eval()
    for module in list(net.modules()):
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
    if device_of(net).type in _CHANNELS_LAST_DEVICES:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return net


def device_of(net: nn.Module) -> torch.device:
    try:
        return next(net.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A 4-D input in the layout `prepare_for_inference` gives the weights."""
    if x.ndim == 4 and x.device.type in _CHANNELS_LAST_DEVICES:
        return x.contiguous(memory_format=torch.channels_last)
    return x
