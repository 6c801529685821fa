"""Denoising networks: any size in, same size out; presets; configs rebuild the network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.models import ARCHITECTURES, build_network, count_parameters
from usdenoise.models.diconvae import DiConvAE

SIZES = [(16, 16), (17, 23), (33, 20)]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("shape", SIZES)
def test_same_size_out_for_any_size(arch: str, shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = build_network(arch, "fast").eval()
    x = torch.rand(2, 1, *shape)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_config_rebuilds_identical_network(arch: str) -> None:
    torch.manual_seed(0)
    net = build_network(arch, "fast", **({"channels": 4} if arch != "diconvae" else {})).eval()
    clone = build_network(arch, **net.config).eval()
    clone.load_state_dict(net.state_dict())
    x = torch.rand(1, 1, 20, 24)
    with torch.no_grad():
        assert torch.equal(net(x), clone(x))
    assert clone.config == net.config


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_presets_exist_and_paper_is_wider(arch: str) -> None:
    cls = ARCHITECTURES[arch]
    assert {"paper", "fast"} <= set(cls.PRESETS)
    # counting parameters only builds the modules (no forward pass)
    assert count_parameters(build_network(arch, "paper")) > count_parameters(
        build_network(arch, "fast")
    )


def test_preset_parameter_counts() -> None:
    assert 50_000 <= count_parameters(build_network("diconvae", "fast")) <= 100_000
    assert count_parameters(build_network("diconvae", "paper")) == 1_035_137
    # the published DnCNN-S: 17 layers of 64 channels
    assert count_parameters(build_network("dncnn", "paper")) == 556_097


def test_diconvae_follows_the_study() -> None:
    net = build_network("diconvae", "paper")
    assert len(net.encoder) == 4
    for block, d in zip(net.encoder, [1, 2, 4, 8], strict=True):
        conv, bn, relu, drop = block
        assert isinstance(conv, nn.Conv2d) and conv.dilation == (d, d) and conv.padding == (d, d)
        assert isinstance(bn, nn.BatchNorm2d)
        assert isinstance(relu, nn.ReLU)
        assert isinstance(drop, nn.Dropout2d)
    # symmetric decoder: widths and dilations mirrored, then a 1-channel head
    enc_w = [b[0].out_channels for b in net.encoder]
    dec_w = [b[0].out_channels for b in net.decoder] + [net.head.out_channels]
    assert dec_w == enc_w[-2::-1] + [1]
    dec_d = [b[0].dilation[0] for b in net.decoder] + [net.head.dilation[0]]
    assert dec_d == [8, 4, 2, 1]
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())


def test_diconvae_sigmoid_output_in_unit_range() -> None:
    torch.manual_seed(0)
    net = build_network("diconvae", "fast").eval()
    with torch.no_grad():
        y = net(torch.rand(1, 1, 24, 24) * 5 - 2)  # even out-of-range input
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("mode", ["speckle", "log"])
def test_residual_modes_start_near_identity(mode: str) -> None:
    torch.manual_seed(0)
    net = build_network("diconvae", "fast", residual=mode).eval()
    x = torch.rand(1, 1, 24, 24) * 0.9 + 0.05
    with torch.no_grad():
        y = net(x)
    # the residual head starts tiny, so the network starts close to "return the input"
    assert (y - x).abs().max() < 0.1


@pytest.mark.parametrize("arch", ["diconvae", "dncnn"])
def test_receptive_field_bound(arch: str) -> None:
    """A pixel farther than the stated receptive-field radius does not change the output."""
    torch.manual_seed(0)
    net = build_network(arch, "fast").eval()
    r = (net.receptive_field - 1) // 2
    n = 2 * r + 8
    x = torch.rand(1, 1, n, n)
    x2 = x.clone()
    x2[..., 0, 0] = 1 - x2[..., 0, 0]
    with torch.no_grad():
        d = (net(x) - net(x2)).abs()[0, 0]
    assert d[r + 1 :, :].max() == 0 and d[:, r + 1 :].max() == 0
    assert d[: r + 1, : r + 1].max() > 0


def test_gradient_flows_through_each_preset() -> None:
    torch.manual_seed(0)
    for arch in ARCHITECTURES:
        net = build_network(arch, "fast", **({"channels": 4} if arch != "diconvae" else {}))
        net.train()
        y = net(torch.rand(2, 1, 16, 16))
        y.mean().backward()
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert all(g is not None for g in grads)


def test_dilations_and_channels_as_parameters() -> None:
    net = DiConvAE(channels=8, dilations=[1, 3, 5], depth=3, dropout=0.0)
    assert net.config["channels"] == [8, 8, 8]
    assert net.receptive_field == 1 + 2 * 2 * 9
    assert net(torch.rand(1, 1, 16, 19)).shape == (1, 1, 16, 19)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("resnet",), {}, "unknown architecture 'resnet'"),
        (("diconvae", "huge"), {}, "unknown preset 'huge'"),
        (("diconvae",), {"width": 3}, "unknown option 'width'"),
        (("diconvae",), {"residual": "mult"}, "residual 'mult'"),
        (("diconvae",), {"depth": 3}, "channels has 4 entries but depth is 3"),
        (("diconvae",), {"dropout": 1.5}, "dropout"),
        (("diconvae",), {"kernel_size": 4}, "kernel_size must be odd"),
        (("dncnn",), {"depth": 1}, "depth >= 2"),
        (("unet",), {"levels": 0}, "levels >= 1"),
    ],
)
def test_bad_configurations(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(UsdenoiseError, match=match):
        build_network(*args, **kwargs)
