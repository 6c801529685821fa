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
from usdenoise.denoise.classic.perona_malik import PeronaMalik


def pm_reference(img: np.ndarray, iterations: int, kappa: float, dt: float, kind: str):
    out = img.astype(np.float64)
    for _ in range(iterations):
        p = np.pad(out, 1, mode="reflect")
        i = p[1:-1, 1:-1]
        flux = np.zeros_like(i)
        for d in (p[:-2, 1:-1] - i, p[2:, 1:-1] - i, p[1:-1, :-2] - i, p[1:-1, 2:] - i):
            if kind == "exponential":
                g = np.exp(-((d / kappa) ** 2))
            else:
                g = 1.0 / (1.0 + (d / kappa) ** 2)
            flux += g * d
        out = i + dt * flux
    return out


@pytest.mark.parametrize("conduction", ["exponential", "rational"])
def test_matches_numpy_reference(conduction: str) -> None:
    x = speckled(step(size=13, batch=1), 0.3, seed=0)
    den = PeronaMalik(iterations=5, kappa=0.15, time_step=0.25, conduction=conduction)
    ref = pm_reference(x[0, 0].numpy(), 5, 0.15, 0.25, conduction)
    np.testing.assert_allclose(den.denoise(x)[0, 0].numpy(), np.clip(ref, 0, 1), atol=1e-5)


@pytest.mark.parametrize("conduction", ["exponential", "rational"])
def test_properties(conduction: str) -> None:
    den = PeronaMalik(conduction=conduction)
    check_constant(den)
    check_shape_and_range(den)
    check_batch_independent(den)
    assert variance_ratio(den) < 0.2
    assert edge_epi(den) > edge_epi(Mean(window=5)) + 0.2
    # kappa far above the edge contrast (0.4) diffuses across it: the edge is lost
    assert edge_epi(PeronaMalik(conduction=conduction, kappa=2.0, iterations=50)) < 0.2


def test_time_step_stability_check() -> None:
    with pytest.raises(UsdenoiseError, match="perona_malik: parameter time_step: 0.5 .*unstable"):
        PeronaMalik(time_step=0.5)


@pytest.mark.parametrize(
    "bad", [{"kappa": 0.0}, {"iterations": -1}, {"conduction": "linear"}, {"kappa": "x"}]
)
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(UsdenoiseError, match="perona_malik: parameter"):
        PeronaMalik(**bad)


def test_image_too_small() -> None:
    with pytest.raises(UsdenoiseError, match="perona_malik: image"):
        PeronaMalik().denoise(torch.rand(1, 1, 10, 1))
