"""Space-to-depth (shuffle) networks: same size out, and equal to an explicit fold/unfold."""

from __future__ import annotations

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.models import build_network
from usdenoise.models.space_to_depth import lattice_apply
from usdenoise.models.tiling import denoise_tiled


@pytest.mark.parametrize("shape", [(32, 32), (37, 50), (5, 9)])
@pytest.mark.parametrize("shuffle", [2, 4])
@pytest.mark.parametrize("arch", ["diconvae", "unet"])
def test_any_size_comes_back_unchanged(shape: tuple[int, int], shuffle: int, arch: str) -> None:
    extra = {"residual": "speckle"} if arch == "diconvae" else {}
    net = build_network(arch, channels=4, shuffle=shuffle, **extra).eval()
    assert net(torch.rand(2, 1, *shape)).shape == (2, 1, *shape)


def test_matches_explicit_pixel_unshuffle() -> None:
    torch.manual_seed(0)
    net = build_network("diconvae", channels=4, shuffle=2, dropout=0.0).eval()
    x = torch.rand(1, 1, 16, 16)
    folded = torch.nn.functional.pixel_unshuffle(x, 2)
    body = net.head(net.decoder(net.encoder(folded)))
    expected = torch.sigmoid(torch.nn.functional.pixel_shuffle(body, 2))
    torch.testing.assert_close(net(x), expected, atol=1e-6, rtol=0)


def test_receptive_field_scales_and_tiling_stays_exact() -> None:
    plain = build_network("diconvae", channels=4, dropout=0.0)
    folded = build_network("diconvae", channels=4, dropout=0.0, shuffle=2).eval()
    assert folded.receptive_field == 2 * plain.receptive_field
    x = torch.rand(1, 1, 150, 170)
    with torch.no_grad():
        torch.testing.assert_close(
            denoise_tiled(folded, x, tile=64, overlap=16), folded(x), atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("arch", ["diconvae", "unet"])
def test_bad_shuffle_rejected(arch: str) -> None:
    with pytest.raises(UsdenoiseError, match="shuffle must be 1, 2 or 4"):
        build_network(arch, shuffle=3)


def test_fold_then_unfold_is_the_identity() -> None:
    from usdenoise.models.space_to_depth import fold, unfold

    x = torch.rand(2, 1, 13, 10)
    folded = fold(x, 2, multiple=4)
    assert folded.shape[1] == 4 and folded.shape[-1] % 4 == 0
    assert torch.equal(unfold(folded, 2, (13, 10)), x)


def test_lattice_apply_runs_fn_on_each_sub_lattice_and_reassembles() -> None:
    x = torch.rand(2, 1, 37, 30)  # not a multiple of the stride: padded, then cropped
    assert torch.equal(lattice_apply(lambda t: t, x, 4), x)
    seen: list[tuple[int, ...]] = []

    def record(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape))
        return 2 * t

    assert torch.allclose(lattice_apply(record, x, 4), 2 * x)
    assert seen == [(2 * 16, 1, 10, 8)]
    # each sub-image is one lattice x[r::s, c::s]: a per-sub-image offset lands on it alone
    offsets = lambda t: t + torch.arange(t.shape[0]).view(-1, 1, 1, 1) % 16  # noqa: E731
    y = lattice_apply(offsets, torch.zeros(1, 1, 8, 8), 4)
    assert float(y[0, 0, 1, 2]) == 1 * 4 + 2 and float(y[0, 0, 5, 6]) == 1 * 4 + 2
    assert torch.equal(lattice_apply(record, x, 1), 2 * x)
