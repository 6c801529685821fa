"""prepare_for_inference: Conv+BN folding and channels-last weights leave the output unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from usdenoise.models.diconvae import DiConvAE
from usdenoise.models.dncnn import DnCNN
from usdenoise.models.inference import prepare_for_inference, to_channels_last
from usdenoise.models.unet import UNet


def _trained_like(net: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, as after training."""
    gen = torch.Generator().manual_seed(0)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return net.eval()


def _copy(net: nn.Module) -> nn.Module:
    twin = type(net)(**net.config)
    twin.load_state_dict(net.state_dict())
    return twin.eval()


@pytest.mark.parametrize("make", [
    lambda: UNet(channels=4, levels=2, level_input=True),
    lambda: UNet(channels=4, levels=2, shuffle=2),
    lambda: DnCNN(channels=8, depth=4),
    lambda: DiConvAE(**DiConvAE.PRESETS["fast"]),
], ids=["unet-level", "unet-shuffle", "dncnn", "diconvae"])
def test_same_output_as_the_original(make):
    torch.manual_seed(0)
    net = _trained_like(make())
    channels = 2 if net.config.get("level_input") else 1
    x = torch.rand(2, channels, 37, 53)
    with torch.no_grad():
        expected = net(x)
        fast = prepare_for_inference(_copy(net))
        got = fast(to_channels_last(x))
    # folding reorders float sums: agreement to float32 rounding of the activations
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert got.shape == expected.shape


def test_unet_batchnorm_is_folded_and_weights_are_channels_last():
    net = prepare_for_inference(_trained_like(UNet(channels=4, levels=2)))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    conv = net.inc[0]
    assert conv.bias is not None  # the folded BatchNorm's shift
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not net.training


def test_batchnorm_without_running_statistics_is_kept():
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False))
    prepare_for_inference(seq)
    assert isinstance(seq[1], nn.BatchNorm2d)


def test_to_channels_last_leaves_other_shapes():
    x = torch.rand(3, 5)
    assert to_channels_last(x) is x
    y = to_channels_last(torch.rand(1, 2, 4, 4))
    assert y.is_contiguous(memory_format=torch.channels_last)
