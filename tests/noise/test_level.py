"""noise.level: the speckle level estimate, the added level, correlated noise."""

from __future__ import annotations

import math

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.noise import make_noise
from usdenoise.noise.level import (
    LEVEL_SCALE,
    added_level,
    correlated_noise,
    dilog,
    estimate_level,
    gaussian_blur,
    level_map,
    log_speckle_correlation,
    speckle_correlation_kernel,
)


def _flat(value: float, size: int = 128) -> torch.Tensor:
    return torch.full((1, 1, size, size), value)


def test_level_of_white_noise_on_a_flat_image() -> None:
    g = torch.Generator().manual_seed(0)
    for sigma in (0.02, 0.05, 0.1):
        x = _flat(0.5) + sigma * torch.randn(1, 1, 128, 128, generator=g)
        # the quietest-looking tiles are chosen, so the estimate runs ~3 % low: within 6 %
        assert estimate_level(x)[0] == pytest.approx(sigma, rel=0.06)


def test_level_ignores_black_and_edges() -> None:
    g = torch.Generator().manual_seed(1)
    x = _flat(0.5) + 0.05 * torch.randn(1, 1, 128, 128, generator=g)
    x[..., :, :40] = 0.0  # outside the sector
    x[..., 60:, 40:] += 0.3  # a strong edge: its tiles have high structure
    assert estimate_level(x)[0] == pytest.approx(0.05, rel=0.1)


def test_no_valid_tiles_gives_zero() -> None:
    assert torch.equal(estimate_level(torch.zeros(2, 1, 64, 64)), torch.zeros(2))
    assert torch.equal(estimate_level(torch.rand(1, 1, 8, 8)), torch.zeros(1))  # < one tile
    with pytest.raises(UsdenoiseError, match="estimate_level"):
        estimate_level(torch.rand(1, 2, 64, 64))


def test_added_level_is_the_quadrature_difference() -> None:
    got = added_level(torch.tensor([0.05, 0.02]), torch.tensor([0.03, 0.04]))
    assert torch.allclose(got, torch.tensor([0.04, 0.0]))


def test_level_map() -> None:
    like = torch.zeros(2, 1, 5, 7)
    m = level_map(torch.tensor([0.1, 0.2]), like)
    assert m.shape == (2, 1, 5, 7) and float(m[1, 0, 3, 3]) == pytest.approx(0.2 * LEVEL_SCALE)


def test_correlated_noise_has_unit_variance_and_the_stated_correlation() -> None:
    g = torch.Generator().manual_seed(2)
    axial, lateral = 1.5, 3.0
    n = correlated_noise((8, 1, 128, 128), axial=axial, lateral=lateral, generator=g)
    assert float(n.std()) == pytest.approx(1.0, rel=0.05)
    assert abs(float(n.mean())) < 0.05
    # Gaussian-filtered white noise: correlation at lag d is exp(-d² / (4 σ²)) per axis
    for dim, sigma in ((-2, axial), (-1, lateral)):
        lag = 2
        a, b = n.narrow(dim, 0, 128 - lag), n.narrow(dim, lag, 128 - lag)
        rho = float((a * b).mean() / (a.std() * b.std()))
        assert rho == pytest.approx(math.exp(-lag**2 / (4 * sigma**2)), abs=0.05)
    white = correlated_noise((2, 1, 64, 64), axial=0, lateral=0, generator=g)
    assert float(white.std()) == pytest.approx(1.0, rel=0.05)


def test_dilog_and_the_physics_speckle_correlation() -> None:
    assert float(dilog(torch.tensor(1.0))) == pytest.approx(math.pi**2 / 6, abs=1e-9)
    assert float(dilog(torch.tensor(0.5))) == pytest.approx(math.pi**2 / 12 - math.log(2)**2 / 2,
                                                            abs=1e-9)
    # the physics model's log speckle at PSF widths 1.5 (depth) x 2.5 px: lag-1 correlations
    x = torch.full((4, 1, 128, 128), 0.6)
    model = make_noise("physics:0.1")
    z = (model(x, generator=torch.Generator().manual_seed(0)) - model.noise_free(x))
    z = z[..., 16:-16, 16:-16] - z.mean()
    v = z.square().mean()
    axial = float((z[..., 1:, :] * z[..., :-1, :]).mean() / v)
    lateral = float((z[..., :, 1:] * z[..., :, :-1]).mean() / v)
    assert axial == pytest.approx(float(log_speckle_correlation(torch.tensor(1.0), 1.5)), abs=0.04)
    assert lateral == pytest.approx(float(log_speckle_correlation(torch.tensor(1.0), 2.5)),
                                    abs=0.04)


def test_speckle_correlated_noise_has_the_log_speckle_correlation() -> None:
    n = correlated_noise((200, 1, 64, 64), axial=1.5, lateral=2.5, correlation="speckle",
                         generator=torch.Generator().manual_seed(3))
    assert float(n.std()) == pytest.approx(1.0, rel=0.02)
    kernel = speckle_correlation_kernel((64, 64), 1.5, 2.5)
    var = float(n.square().mean())
    for dz, dx in ((1, 0), (0, 1), (2, 0), (0, 3), (1, 1)):
        measured = float((n[..., dz:, dx:] * n[..., : 64 - dz, : 64 - dx]).mean()) / var
        assert measured == pytest.approx(float(kernel[dz, dx]), abs=0.02), (dz, dx)
    with pytest.raises(UsdenoiseError, match="correlation 'pink'"):
        correlated_noise((1, 1, 8, 8), axial=1, lateral=1, correlation="pink")


@pytest.mark.parametrize(("axial", "lateral"), [(1.5, 2.5), (4.0, 4.0), (0.0, 3.0), (2.0, 0.0)])
def test_gaussian_blur_is_scipys_gaussian_filter(axial: float, lateral: float) -> None:
    """Against scipy.ndimage.gaussian_filter1d per axis, mirror padding (torch's "reflect")
    and the same radius ceil(3 sigma): equal to 1e-6 on a 37 x 53 image."""
    from scipy.ndimage import gaussian_filter1d

    x = torch.rand(2, 1, 37, 53, generator=torch.Generator().manual_seed(0))
    expected = x.double().numpy()
    for axis, sigma in ((-2, axial), (-1, lateral)):
        if sigma > 0:
            expected = gaussian_filter1d(expected, sigma, axis=axis, mode="mirror",
                                         radius=math.ceil(3 * sigma))
    out = gaussian_blur(x, axial, lateral)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.allclose(out.double(), torch.from_numpy(expected), atol=1e-6)
