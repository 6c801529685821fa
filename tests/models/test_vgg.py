"""VGG16 layers with torchvision's state-dict layout, loaded from a local file only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.models.vgg import VGG16_LAYERS, VGG16Features, read_vgg16_state

# torchvision.models.vgg16().features: conv layer index -> (out, in) channels
TORCHVISION_CONVS = {
    0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
    14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512),
    26: (512, 512), 28: (512, 512),
}


def test_keys_and_shapes_match_torchvision_vgg16() -> None:
    full = VGG16Features(list(VGG16_LAYERS))
    state = full.state_dict()
    expected = {}
    for i, (cout, cin) in TORCHVISION_CONVS.items():
        expected[f"features.{i}.weight"] = (cout, cin, 3, 3)
        expected[f"features.{i}.bias"] = (cout,)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    # 14,714,688 parameters: torchvision's vgg16().features
    assert sum(v.numel() for v in state.values()) == 14_714_688


def test_only_needed_layers_are_built() -> None:
    net = VGG16Features(("relu1_2", "relu2_2"))
    assert len(net.features) == VGG16_LAYERS["relu2_2"] + 1
    feats = net(torch.rand(1, 3, 16, 16))
    assert feats["relu1_2"].shape == (1, 64, 16, 16)
    assert feats["relu2_2"].shape == (1, 128, 8, 8)


def test_loads_features_only_export(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = VGG16Features(("relu1_2",))
    torch.save(src.features.state_dict(), tmp_path / "f.pth")  # keys "0.weight", ...
    dst = VGG16Features(("relu1_2",))
    dst.load_weights(tmp_path / "f.pth")
    assert torch.equal(dst.features[0].weight, src.features[0].weight)


def test_wrong_network_is_refused(tmp_path: Path) -> None:
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8),
                "features.2.weight": torch.zeros(8, 8, 3, 3), "features.2.bias": torch.zeros(8)},
               tmp_path / "small.pth")
    with pytest.raises(UsdenoiseError, match=r"small\.pth: features\.0\.weight has shape"):
        VGG16Features(("relu1_2",)).load_weights(tmp_path / "small.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(UsdenoiseError, match="not a VGG16 state dict"):
        VGG16Features(("relu1_2",)).load_weights(tmp_path / "other.pth")


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(UsdenoiseError, match=r"bad\.safetensors: cannot read VGG16"):
        read_vgg16_state(tmp_path / "bad.safetensors")
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(UsdenoiseError, match=r"bad\.pth: cannot read VGG16 weights"):
        read_vgg16_state(tmp_path / "bad.pth")
    with pytest.raises(UsdenoiseError, match="not found.*vgg16-397923af.pth"):
        read_vgg16_state(tmp_path / "missing.pth")


def test_unknown_layer() -> None:
    with pytest.raises(UsdenoiseError, match="unknown feature layer 'relu9_9'"):
        VGG16Features(("relu9_9",))
