"""SegNet (written here) and the MONAI U-Net wrapper: shapes, unpooling indices, registry,
checkpoints of kind "segmenter"."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from usdenoise.checkpoint import load_model, save_model
from usdenoise.core.errors import UsdenoiseError
from usdenoise.models.segmenters import SEGMENTERS, build_segmenter
from usdenoise.models.segnet import SegNet


@pytest.mark.parametrize("size", [(32, 32), (33, 45), (17, 24)])
def test_segnet_logits_have_the_input_size(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = build_segmenter("segnet", "fast", num_classes=3).eval()
    x = torch.rand(2, 1, *size)
    assert net(x).shape == (2, 3, *size)


def test_segnet_decoder_unpools_with_the_encoders_pool_indices(monkeypatch) -> None:
    torch.manual_seed(0)
    net = SegNet(channels=[4, 6, 8], convs=[1, 2, 1], num_classes=2).eval()
    x = torch.rand(1, 1, 20, 28)
    stages = net.encode(x)
    # the indices are the argmax positions of the pre-pool features
    pre = net.encoder[0](x)
    pooled, indices, size = stages[0]
    assert size == pre.shape
    assert torch.equal(pre.flatten(2).gather(2, indices.flatten(2)), pooled.flatten(2))
    seen = []
    original = net.unpool.forward

    def spy(y, idx, output_size=None):
        seen.append((idx, tuple(output_size)))
        out = original(y, idx, output_size=output_size)
        # non-zero values sit only where the pool took its maxima
        hit = torch.zeros_like(out, dtype=torch.bool).flatten(2)
        hit.scatter_(2, idx.flatten(2), True)
        assert not (out.flatten(2)[~hit] != 0).any()
        return out

    monkeypatch.setattr(net.unpool, "forward", spy)
    net(x)
    assert len(seen) == 3  # one unpooling per stage, deepest first
    for (idx, out_size), (_, expected, pre_size) in zip(seen, reversed(stages), strict=True):
        assert torch.equal(idx, expected)
        assert out_size == tuple(pre_size[-2:])


def test_segnet_paper_preset_is_the_vgg16_encoder() -> None:
    net = build_segmenter("segnet", "paper", num_classes=2)
    convs = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and [c.out_channels for c in convs][-1] == 512
    assert net.config["channels"] == [64, 128, 256, 512, 512]


def test_segnet_rejects_bad_settings_and_tiny_input() -> None:
    with pytest.raises(UsdenoiseError, match="convs"):
        SegNet(channels=[4, 8], convs=[1])
    with pytest.raises(UsdenoiseError, match="num_classes"):
        SegNet(num_classes=1)
    with pytest.raises(UsdenoiseError, match="smaller than"):
        SegNet(channels=[4, 4, 4])(torch.rand(1, 1, 6, 6))


def test_monai_unet_wrapper_pads_odd_sizes() -> None:
    pytest.importorskip("monai")
    torch.manual_seed(0)
    net = build_segmenter("unet", "fast", num_classes=2).eval()
    assert net(torch.rand(1, 1, 30, 45)).shape == (1, 2, 30, 45)
    assert set(SEGMENTERS) == {"segnet", "unet"}


def test_build_segmenter_errors() -> None:
    with pytest.raises(UsdenoiseError, match="unknown segmentation architecture 'vnet'"):
        build_segmenter("vnet")
    with pytest.raises(UsdenoiseError, match="unknown preset 'huge'"):
        build_segmenter("segnet", "huge")
    with pytest.raises(UsdenoiseError, match="unknown option 'depth'"):
        build_segmenter("segnet", depth=3)


@pytest.mark.parametrize("arch", ["segnet", "unet"])
def test_segmenter_checkpoint_round_trip_and_kind(tmp_path: Path, arch: str) -> None:
    if arch == "unet":
        pytest.importorskip("monai")
    torch.manual_seed(0)
    net = build_segmenter(arch, "fast", num_classes=3).eval()
    path = save_model(tmp_path / "seg", net, arch=arch, arch_config=net.config, kind="segmenter")
    loaded, sidecar = load_model(path, kind="segmenter")
    assert sidecar["kind"] == "segmenter"
    x = torch.rand(1, 1, 32, 32)
    assert torch.equal(loaded(x), net(x))
    with pytest.raises(UsdenoiseError, match="is a segmenter, not a denoiser"):
        load_model(path, kind="denoiser")
