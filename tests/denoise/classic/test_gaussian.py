from __future__ import annotations

import numpy as np
import pytest
import torch
from local_filter_helpers import (
    check_batch_independent,
    check_constant,
    check_shape_and_range,
    variance_ratio,
)
from skimage.filters import gaussian as sk_gaussian

from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.classic.gaussian import Gaussian


@pytest.mark.parametrize(("sigma", "truncate"), [(0.5, 4.0), (1.0, 4.0), (2.0, 3.0)])
def test_matches_skimage(sigma: float, truncate: float) -> None:
    # skimage mode "mirror" = our reflect padding; tolerance 1e-5 (float32 vs float64)
    x = torch.rand(1, 1, 29, 35, generator=torch.Generator().manual_seed(0))
    y = Gaussian(sigma=sigma, truncate=truncate).denoise(x)[0, 0].numpy()
    ref = sk_gaussian(
        x[0, 0].double().numpy(), sigma=sigma, mode="mirror", truncate=truncate,
        preserve_range=True,
    )
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_properties() -> None:
    check_constant(Gaussian())
    check_shape_and_range(Gaussian())
    check_batch_independent(Gaussian())
    assert variance_ratio(Gaussian(sigma=1.5)) < 0.1


@pytest.mark.parametrize("bad", [{"sigma": 0}, {"sigma": -1}, {"sigma": 100}, {"truncate": 0.5}])
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(UsdenoiseError, match="gaussian: parameter"):
        Gaussian(**bad)


def test_image_smaller_than_kernel() -> None:
    # sigma 2, truncate 4 -> radius 8 -> needs 17 px
    with pytest.raises(UsdenoiseError, match="17-pixel minimum"):
        Gaussian(sigma=2.0).denoise(torch.rand(1, 1, 16, 40))
