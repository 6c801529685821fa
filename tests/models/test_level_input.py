"""Level-conditioned networks (FFDNet style): a second input channel, one output channel."""

from __future__ import annotations

import pytest
import torch

from usdenoise.checkpoint import save_model
from usdenoise.denoise import make_denoiser
from usdenoise.models import build_network
from usdenoise.models.diconvae import DiConvAE
from usdenoise.models.dncnn import DnCNN
from usdenoise.models.unet import UNet

ARCHS = [
    (UNet, {"channels": 4, "levels": 2}),
    (DnCNN, {"channels": 4, "depth": 3}),
    (DiConvAE, {"channels": 4, "depth": 2, "dilations": [1, 2], "residual": "speckle"}),
    (DiConvAE, {"channels": 4, "depth": 2, "dilations": [1, 2], "residual": "log"}),
]


@pytest.mark.parametrize(("cls", "options"), ARCHS, ids=lambda v: getattr(v, "__name__", ""))
def test_level_channel_in_one_channel_out(cls, options) -> None:
    net = cls(level_input=True, **options).eval()
    assert net.config["level_input"] is True
    x = torch.rand(2, 1, 24, 20)
    with torch.no_grad():
        low = net(torch.cat([x, torch.zeros_like(x)], 1))
        high = net(torch.cat([x, torch.ones_like(x)], 1))
    assert low.shape == (2, 1, 24, 20)
    assert not torch.equal(low, high)  # the level changes the output


def test_plain_networks_keep_their_config() -> None:
    assert "level_input" not in UNet(channels=4).config  # old checkpoints stay byte-equal


def test_denoiser_measures_or_takes_the_level_and_clamps(tmp_path) -> None:
    net = build_network("unet", channels=4, levels=2, level_input=True)
    save_model(tmp_path / "m", net, arch="unet", arch_config=net.config,
               meta={"level": {"scale": 10.0, "range": [0.01, 0.2]}})
    x = torch.rand(1, 1, 64, 64) * 0.5 + 0.25
    auto = make_denoiser("network", checkpoint=str(tmp_path / "m.safetensors"), device="cpu")
    given = make_denoiser("network", checkpoint=str(tmp_path / "m.safetensors"), device="cpu",
                          level=0.1)
    assert auto.denoise(x).shape == x.shape and given.denoise(x).shape == x.shape
    too_high = make_denoiser("network", checkpoint=str(tmp_path / "m.safetensors"),
                             device="cpu", level=5.0)
    top = make_denoiser("network", checkpoint=str(tmp_path / "m.safetensors"), device="cpu",
                        level=0.2)
    with pytest.warns(UserWarning, match=r"outside the trained range \[0.01, 0.2\]; clamped"):
        clamped = too_high.denoise(x)
    assert torch.equal(clamped, top.denoise(x))
