"""Tiled inference equals whole-image inference for receptive-field-bounded networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from usdenoise.core.errors import UsdenoiseError
from usdenoise.models import build_network
from usdenoise.models.tiling import _window, denoise_tiled

TOL = 1e-5  # float32 summation error only


class _Local(nn.Module):
    """Three 3x3 convs: receptive field 7 px (radius 3), reported to the tiler."""

    receptive_field = 7

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(4, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.mark.parametrize("shape", [(61, 47), (50, 50), (33, 70)])
def test_tiled_equals_untiled_on_non_multiple_sizes(shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = _Local().eval()
    x = torch.rand(2, 1, *shape)
    with torch.no_grad():
        full = net(x)
    tiled = denoise_tiled(net, x, tile=20, overlap=6)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < TOL


def test_diconvae_fast_tiled_equals_untiled() -> None:
    torch.manual_seed(0)
    net = build_network("diconvae", "fast", channels=4).eval()
    x = torch.rand(1, 1, 77, 53)
    with torch.no_grad():
        full = net(x)
    tiled = denoise_tiled(net, x, tile=32, overlap=8)  # halo = receptive radius 30
    assert (tiled - full).abs().max() < TOL


def test_without_halo_only_the_seams_differ() -> None:
    torch.manual_seed(0)
    net = _Local().eval()
    x = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        full = net(x)
    tiled = denoise_tiled(net, x, tile=24, overlap=8, halo=0)
    diff = (tiled - full).abs()[0, 0]
    assert diff.max() > TOL  # the tiles lacked context at their inner edges...
    # ...but away from the inner edges (tiles start at 0 and 16) the result is exact
    assert diff[:10, :10].max() < TOL and diff[30:, 30:].max() < TOL


def test_unet_tiled_close_to_untiled() -> None:
    torch.manual_seed(0)
    net = build_network("unet", "fast", channels=4, levels=2).eval()
    x = torch.rand(1, 1, 64, 56)
    with torch.no_grad():
        full = net(x)
    tiled = denoise_tiled(net, x, tile=32, overlap=8, halo=16)
    assert (tiled - full).abs().max() < 0.05


def test_windows_are_a_partition_of_unity() -> None:
    a = _window(20, 6, low=False, high=True, device=torch.device("cpu"))
    b = _window(20, 6, low=True, high=False, device=torch.device("cpu"))
    # tiles of 20 with stride 14 overlap on 6 pixels
    assert torch.allclose(a[14:] + b[:6], torch.ones(6))
    assert (a > 0).all() and (b > 0).all()
    assert a[:14].eq(1).all() and b[6:].eq(1).all()


def test_small_image_is_one_call() -> None:
    calls = []

    class Count(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(x.shape)
            return x

    x = torch.rand(1, 1, 30, 30)
    assert torch.equal(denoise_tiled(Count(), x, tile=32, overlap=8), x)
    assert len(calls) == 1
    calls.clear()
    big = torch.rand(1, 1, 70, 45)
    assert torch.allclose(denoise_tiled(Count(), big, tile=32, overlap=8, halo=0), big)
    # 70 rows -> starts 0, 24, 38; 45 cols -> 0, 13: six tiles of at most 32 x 32
    assert len(calls) == 6 and all(s[-1] <= 32 and s[-2] <= 32 for s in calls)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile": 4}, "tile must be at least 8"),
        ({"tile": 16, "overlap": 16}, "overlap must be in"),
        ({"tile": 16, "overlap": -1}, "overlap must be in"),
        ({"tile": 16, "overlap": 4, "halo": -2}, "halo must be >= 0"),
    ],
)
def test_bad_tiling_options(kwargs: dict, match: str) -> None:
    with pytest.raises(UsdenoiseError, match=match):
        denoise_tiled(_Local(), torch.rand(1, 1, 40, 40), **kwargs)


def test_bad_input_shape() -> None:
    with pytest.raises(UsdenoiseError, match=r"\[B, C, H, W\]"):
        denoise_tiled(_Local(), torch.rand(40, 40))
