from __future__ import annotations

import numpy as np
import pytest
import torch
from local_filter_helpers import (
    check_batch_independent,
    check_constant,
    check_shape_and_range,
    edge_epi,
    speckled,
    step,
    variance_ratio,
)

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.mean import Mean
from usdenoise.denoise.classic.srad import SRAD


def srad_reference_step(img: np.ndarray, q0: float, dt: float) -> np.ndarray:
    """One SRAD iteration written from the paper's equations (float64, I > 0)."""
    p = np.pad(img.astype(np.float64), 1, mode="reflect")
    i = p[1:-1, 1:-1]
    d_n, d_s = p[:-2, 1:-1] - i, p[2:, 1:-1] - i
    d_w, d_e = p[1:-1, :-2] - i, p[1:-1, 2:] - i
    grad2 = (d_n**2 + d_s**2 + d_w**2 + d_e**2) / i**2  # |grad I|^2 / I^2
    lap = (d_n + d_s + d_w + d_e) / i  # laplacian / I
    q2 = (0.5 * grad2 - lap**2 / 16.0) / (1.0 + 0.25 * lap) ** 2
    c = 1.0 / (1.0 + (q2 - q0**2) / (q0**2 * (1.0 + q0**2)))
    c = np.clip(c, 0.0, 1.0)
    cp = np.pad(c, 1, mode="reflect")
    div = cp[2:, 1:-1] * d_s + c * d_n + cp[1:-1, 2:] * d_e + c * d_w
    return i + dt * div


@pytest.mark.parametrize(("q0", "dt"), [(0.2, 0.05), (0.35, 0.25)])
def test_one_iteration_matches_paper_equations(q0: float, dt: float) -> None:
    x = 0.1 + 0.8 * speckled(step(size=12, batch=1), 0.3, seed=0)  # I > 0 everywhere
    y = SRAD(iterations=1, time_step=dt, q0=q0).denoise(x)[0, 0].numpy()
    np.testing.assert_allclose(y, srad_reference_step(x[0, 0].numpy(), q0, dt), atol=1e-5)


def test_q0_decays_as_in_the_paper() -> None:
    # iteration n uses q0(t) = q0 exp(-rho t), t = n dt
    x = 0.1 + 0.8 * speckled(step(size=12, batch=1), 0.3, seed=1)
    y = SRAD(iterations=3, time_step=0.2, q0=0.3, rho=0.5).denoise(x)[0, 0].numpy()
    ref = x[0, 0].numpy().astype(np.float64)
    for n in range(3):
        ref = srad_reference_step(ref, 0.3 * np.exp(-0.5 * n * 0.2), 0.2)
    np.testing.assert_allclose(y, np.clip(ref, 0, 1), atol=1e-5)


def test_black_pixels_stay_finite() -> None:
    x = speckled(step(size=24), 0.3, seed=2)
    x[..., :8, :] = 0.0
    x[..., 12, 12] = 0.0
    y = SRAD(iterations=20).denoise(x)
    assert torch.isfinite(y).all()
    assert float(y[..., :4, :].max()) < 1e-3  # diffusion reaches the black rows only slowly


def test_properties() -> None:
    check_constant(SRAD(iterations=10))
    check_shape_and_range(SRAD(iterations=10))
    check_batch_independent(SRAD(iterations=10))
    assert variance_ratio(SRAD(iterations=50)) < 0.2
    assert edge_epi(SRAD(iterations=50)) > edge_epi(Mean(window=5)) + 0.2


def test_time_step_stability_check() -> None:
    with pytest.raises(UsdenoiseError, match="srad: parameter time_step: 0.3 .*unstable"):
        SRAD(time_step=0.3)
    with pytest.raises(UsdenoiseError, match="srad: parameter time_step"):
        SRAD(time_step=0.0)
    SRAD(time_step=0.25)  # the limit itself is allowed


@pytest.mark.parametrize("bad", [{"iterations": 0}, {"iterations": 1.5}, {"q0": -0.1},
                                 {"rho": -1.0}])
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(UsdenoiseError, match="srad: parameter"):
        SRAD(**bad)


def test_image_too_small() -> None:
    with pytest.raises(UsdenoiseError, match="srad: image"):
        SRAD().denoise(torch.rand(1, 1, 2, 10))
