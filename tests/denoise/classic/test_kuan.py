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
    window_loop,
)

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.kuan import Kuan
from usdenoise.denoise.classic.lee import Lee
from usdenoise.denoise.classic.mean import Mean


def kuan_reference(values: np.ndarray, centre: float, cu2: float) -> float:
    m, v = values.mean(), values.var()
    w = np.clip((1.0 - cu2 / max(v / m**2, 1e-12)) / (1.0 + cu2), 0.0, 1.0)
    return m + w * (centre - m)


def test_matches_numpy_loop() -> None:
    x = speckled(step(size=14, batch=1), 0.3, seed=0)
    y = Kuan(window=5, noise_cv=0.3).denoise(x)[0, 0].numpy()
    ref = window_loop(x[0, 0].numpy(), 5, lambda v, c: kuan_reference(v, c, 0.09))
    np.testing.assert_allclose(y, np.clip(ref, 0, 1), atol=1e-5)


def test_smooths_at_least_as_much_as_lee() -> None:
    # W_kuan = W_lee / (1 + Cu^2) <= W_lee: never closer to the pixel than Lee
    x = speckled(step(size=32), 0.3, seed=1)
    lee, kuan = Lee(noise_cv=0.3).denoise(x), Kuan(noise_cv=0.3).denoise(x)
    mean = Mean(window=7).denoise(x)
    assert torch.all((kuan - mean).abs() <= (lee - mean).abs() + 1e-6)


def test_properties() -> None:
    check_constant(Kuan())
    check_shape_and_range(Kuan())
    check_batch_independent(Kuan())
    assert variance_ratio(Kuan()) < 0.2
    assert edge_epi(Kuan()) > edge_epi(Mean(window=7)) + 0.2


@pytest.mark.parametrize("bad", [{"window": 4}, {"window": 1}, {"noise_cv": 6.0}])
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(UsdenoiseError, match="kuan: parameter"):
        Kuan(**bad)


def test_image_smaller_than_window() -> None:
    with pytest.raises(UsdenoiseError, match="kuan: image"):
        Kuan(window=9).denoise(torch.rand(1, 1, 8, 8))
