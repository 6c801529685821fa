"""encoder_features: one list of encoder maps for SegNet and MONAI's UNet."""

from __future__ import annotations

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.models.segmenters import build_segmenter, encoder_features


def test_segnet_features_halve_per_stage() -> None:
    net = build_segmenter("segnet", "fast", channels=[4, 8, 16]).eval()
    x = torch.rand(2, 1, 32, 32)
    features = encoder_features(net, x)
    assert [tuple(f.shape) for f in features] == [(2, 4, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4)]
    assert torch.equal(features[-1], net.encode(x)[-1][0])
    with pytest.raises(UsdenoiseError, match="smaller than"):
        encoder_features(net, torch.rand(1, 1, 4, 4))


@pytest.mark.parametrize("size", [32, 30])
def test_unet_down_path_then_bottom(size: int) -> None:
    pytest.importorskip("monai")
    torch.manual_seed(0)
    net = build_segmenter("unet", "fast", channels=[4, 8, 16, 32]).eval()
    x = torch.rand(2, 1, size, size)
    features = encoder_features(net, x)
    # padded to a multiple of 8 (32), then 16, 8, 4 from the down layers; the bottom keeps 4
    assert [tuple(f.shape) for f in features] == [
        (2, 4, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4), (2, 32, 4, 4)]
    seen = []
    handle = net.net.model[0].register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            net(x)
    finally:
        handle.remove()
    assert torch.equal(features[0], seen[0])
    bottom = net.net.model[1].submodule[1].submodule[1].submodule
    seen.clear()
    handle = bottom.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            net(x)
    finally:
        handle.remove()
    assert torch.equal(features[-1], seen[0])


def test_unet_with_two_levels_and_without_residual_units() -> None:
    pytest.importorskip("monai")
    net = build_segmenter("unet", "fast", channels=[4, 8], num_res_units=0).eval()
    features = encoder_features(net, torch.rand(1, 1, 16, 16))
    assert [tuple(f.shape) for f in features] == [(1, 4, 8, 8), (1, 8, 8, 8)]


def test_unknown_segmenter() -> None:
    with pytest.raises(UsdenoiseError, match="no encoder known for Conv2d"):
        encoder_features(torch.nn.Conv2d(1, 2, 1), torch.rand(1, 1, 8, 8))
