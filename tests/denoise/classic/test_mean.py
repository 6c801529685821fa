from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from local_filter_helpers import (
    check_batch_independent,
    check_constant,
    check_shape_and_range,
    variance_ratio,
)
from scipy.ndimage import uniform_filter

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.mean import Mean


@pytest.mark.parametrize("window", [3, 5, 9, 15, 31])
def test_matches_scipy_and_opencv(window: int) -> None:
    # reflect padding = scipy "mirror" = OpenCV BORDER_REFLECT_101; tolerance 1e-5
    x = torch.rand(2, 1, 37, 45, generator=torch.Generator().manual_seed(0))
    y = Mean(window=window).denoise(x).numpy()
    ref = uniform_filter(x.double().numpy(), size=(1, 1, window, window), mode="mirror")
    np.testing.assert_allclose(y, ref, atol=1e-5)
    for i in range(2):
        ref_cv = cv2.blur(x[i, 0].numpy(), (window, window), borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(y[i, 0], ref_cv, atol=1e-5)


def test_properties() -> None:
    check_constant(Mean())
    check_shape_and_range(Mean())
    check_batch_independent(Mean())
    assert variance_ratio(Mean()) < 0.1


@pytest.mark.parametrize("bad", [{"window": 4}, {"window": 1}, {"window": 99}, {"window": "x"}])
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(UsdenoiseError, match="mean: parameter window"):
        Mean(**bad)


def test_image_smaller_than_window() -> None:
    with pytest.raises(UsdenoiseError, match="smaller than the 7-pixel minimum"):
        Mean(window=7).denoise(torch.rand(1, 1, 6, 20))
