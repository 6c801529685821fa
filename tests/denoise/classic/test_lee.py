from __future__ import annotations

import numpy as np
import pytest
import torch
from local_filter_helpers import (
    check_batch_independent,
    check_constant,
    check_shape_and_range,
    edge_epi,
    flat,
    speckled,
    step,
    variance_ratio,
    window_loop,
)

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic._local import estimate_noise_cv2, local_stats
from usdenoise.denoise.classic.lee import Lee
from usdenoise.denoise.classic.mean import Mean


def test_hand_computed_5x5() -> None:
    # 5x5 image of 0.5 with 1.0 in the centre; a 5x5 window at the centre sees all of it:
    # mean = 13/25 = 0.52, E[x^2] = 7/25 = 0.28, var = 0.0096, Ci^2 = 0.0096/0.2704 = 6/169.
    # noise cv 0.1 -> W = 1 - 0.01 * 169/6 = 4.31/6; out = 0.52 + 0.48 * 4.31/6 = 0.8648.
    x = torch.full((1, 1, 5, 5), 0.5)
    x[0, 0, 2, 2] = 1.0
    y = Lee(window=5, noise_cv=0.1).denoise(x)
    assert float(y[0, 0, 2, 2]) == pytest.approx(0.8648, abs=1e-5)


def lee_reference(values: np.ndarray, centre: float, cu2: float) -> float:
    m, v = values.mean(), values.var()
    w = np.clip(1.0 - cu2 / max(v / m**2, 1e-12), 0.0, 1.0)
    return m + w * (centre - m)


@pytest.mark.parametrize("window", [3, 7])
def test_matches_numpy_loop(window: int) -> None:
    x = speckled(step(size=16, batch=1), 0.3, seed=0)[:, :, :, :13]
    y = Lee(window=window, noise_cv=0.25).denoise(x)[0, 0].numpy()
    ref = window_loop(x[0, 0].numpy(), window, lambda v, c: lee_reference(v, c, 0.0625))
    np.testing.assert_allclose(y, np.clip(ref, 0, 1), atol=1e-5)


def test_noise_cv_estimate() -> None:
    # lower quartile of the 7x7 local cv: about 10% below the true cv on flat speckle,
    # and an edge across the image does not move it much
    for cv in (0.1, 0.3):
        for clean in (flat(), step()):
            mean, var = local_stats(speckled(clean, cv, seed=1), 7)
            est = estimate_noise_cv2(mean, var).sqrt()
            assert torch.all((est > 0.8 * cv) & (est < 1.05 * cv)), (cv, est)
    # black background is ignored, an all-black image gets 0
    dark = torch.zeros(1, 1, 32, 32)
    assert float(estimate_noise_cv2(*local_stats(dark, 7))[0]) == 0.0


def test_properties() -> None:
    check_constant(Lee())
    check_constant(Lee(noise_cv=0.2))
    check_shape_and_range(Lee())
    check_batch_independent(Lee())
    assert variance_ratio(Lee()) < 0.2
    assert edge_epi(Lee()) > edge_epi(Mean(window=7)) + 0.2


@pytest.mark.parametrize(
    "bad", [{"window": 2}, {"window": 8}, {"window": 53}, {"noise_cv": -0.1}, {"noise_cv": "a"}]
)
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(UsdenoiseError, match="lee: parameter"):
        Lee(**bad)


def test_image_smaller_than_window() -> None:
    with pytest.raises(UsdenoiseError, match="lee: image \\(6, 30\\) is smaller"):
        Lee(window=7).denoise(torch.rand(1, 1, 6, 30))
