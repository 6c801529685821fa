"""Metrics against references (scikit-image, pytorch-msssim, numpy formulas) and properties.

Tolerances: PSNR 1e-4 dB vs skimage; SSIM 1e-5 vs skimage (the target is 1e-3);
MS-SSIM 1e-5 vs pytorch-msssim; ENL/CNR/SSI/EPI 1e-5 relative vs numpy float64 formulas;
gCNR 1e-3 vs the numpy histogram estimator (a value on a bin edge may land in the
neighbouring bin: 1/4096 per pixel); ENL of Gamma(L) speckle within 8 % of L.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_msssim
import torch
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from usdenoise import metrics
from usdenoise.core.errors import UsdenoiseError
from usdenoise.metrics.image import (
    METRICS,
    MS_SSIM_WEIGHTS,
    _dilate,
    _erode,
    box_mask,
    cnr,
    enl,
    epi,
    gcnr,
    head_background_rois,
    ms_ssim,
    ms_ssim_scales,
    psnr,
    ssi,
    ssim,
)


def _pair(b: int, h: int, w: int, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    # smooth-ish structure plus noise so SSIM is far from 0 and 1
    base = torch.rand(b, 1, h // 4 + 1, w // 4 + 1, generator=g)
    clean = torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear")
    noisy = (clean + noise * torch.randn(b, 1, h, w, generator=g)).clamp(0, 1)
    return clean, noisy


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


# ------------------------------------------------------------------------------ PSNR


def test_psnr_matches_skimage():
    clean, noisy = _pair(3, 40, 52)
    got = psnr(noisy, clean)
    assert got.shape == (3,)
    for i in range(3):
        want = peak_signal_noise_ratio(_np(clean[i, 0]), _np(noisy[i, 0]), data_range=1.0)
        assert got[i].item() == pytest.approx(want, abs=1e-4)
    got255 = psnr(noisy * 255, clean * 255, data_range=255.0)
    torch.testing.assert_close(got255, got, atol=1e-3, rtol=0)


def test_psnr_identical_is_inf_and_more_noise_is_lower():
    clean, _ = _pair(2, 32, 32)
    assert torch.isinf(psnr(clean, clean)).all()
    _, weak = _pair(2, 32, 32, noise=0.05)
    _, strong = _pair(2, 32, 32, noise=0.2)
    assert (psnr(strong, clean) < psnr(weak, clean)).all()


# ------------------------------------------------------------------------------ SSIM


@pytest.mark.parametrize("shape", [(48, 64), (37, 29), (11, 11)])
def test_ssim_gaussian_matches_skimage(shape):
    clean, noisy = _pair(2, *shape)
    got = ssim(noisy, clean)
    for i in range(2):
        want = structural_similarity(
            _np(noisy[i, 0]),
            _np(clean[i, 0]),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        assert got[i].item() == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("shape", [(40, 40), (23, 31), (7, 9)])
def test_ssim_uniform_matches_skimage_default(shape):
    clean, noisy = _pair(2, *shape)
    got = ssim(noisy, clean, window="uniform")
    for i in range(2):
        want = structural_similarity(_np(noisy[i, 0]), _np(clean[i, 0]), data_range=1.0)
        assert got[i].item() == pytest.approx(want, abs=1e-5)


def test_ssim_options_match_skimage():
    clean, noisy = _pair(1, 40, 40, noise=0.3)
    got = ssim(noisy, clean, window="uniform", win_size=5, sample_covariance=False, k2=0.05)
    want = structural_similarity(
        _np(noisy[0, 0]), _np(clean[0, 0]), data_range=1.0, win_size=5,
        use_sample_covariance=False, K2=0.05,
    )
    assert got.item() == pytest.approx(want, abs=1e-5)
    got = ssim(noisy * 255, clean * 255, data_range=255.0, sigma=1.0)
    want = structural_similarity(
        _np(noisy[0, 0]) * 255, _np(clean[0, 0]) * 255, data_range=255.0,
        gaussian_weights=True, sigma=1.0, use_sample_covariance=False,
    )
    assert got.item() == pytest.approx(want, abs=1e-5)


def test_ssim_float64_input_stays_float64():
    clean, noisy = _pair(1, 30, 30)
    got = ssim(noisy.double(), clean.double())
    assert got.dtype == torch.float64
    want = structural_similarity(
        _np(noisy[0, 0]), _np(clean[0, 0]), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0,
    )
    assert got.item() == pytest.approx(want, abs=1e-10)


def test_ssim_properties():
    clean, weak = _pair(3, 48, 48, noise=0.05)
    _, strong = _pair(3, 48, 48, noise=0.2)
    torch.testing.assert_close(ssim(clean, clean), torch.ones(3))
    torch.testing.assert_close(ssim(clean, clean, window="uniform"), torch.ones(3))
    assert (ssim(strong, clean) < ssim(weak, clean)).all()


def test_ssim_is_differentiable():
    clean, noisy = _pair(1, 24, 24)
    noisy.requires_grad_(True)
    ssim(noisy, clean).sum().backward()
    assert noisy.grad is not None and torch.isfinite(noisy.grad).all()


def test_ssim_rejects_image_smaller_than_window_and_bad_window():
    x = torch.rand(1, 1, 10, 20)
    with pytest.raises(UsdenoiseError, match="smaller than the 11x11 window"):
        ssim(x, x)
    with pytest.raises(UsdenoiseError, match="window must be"):
        ssim(x, x, window="box")
    with pytest.raises(UsdenoiseError, match="odd"):
        ssim(x, x, win_size=4)


# ------------------------------------------------------------------------------ MS-SSIM


@pytest.mark.parametrize("shape", [(161, 161), (201, 170)])
def test_ms_ssim_matches_pytorch_msssim(shape):
    clean, noisy = _pair(2, *shape)
    want = pytorch_msssim.ms_ssim(noisy, clean, data_range=1.0, size_average=False)
    torch.testing.assert_close(ms_ssim(noisy, clean), want, atol=1e-5, rtol=0)


def test_ms_ssim_custom_weights_match_pytorch_msssim():
    # validates the m-scale arithmetic that small images use
    clean, noisy = _pair(2, 177, 190, noise=0.2)
    weights = [0.1, 0.2, 0.3, 0.4]
    want = pytorch_msssim.ms_ssim(
        noisy, clean, data_range=1.0, size_average=False, weights=weights
    )
    torch.testing.assert_close(ms_ssim(noisy, clean, weights=weights), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("side", "scales"),
    [(1, 0), (10, 0), (11, 1), (20, 1), (21, 2), (41, 3), (81, 4), (160, 4), (161, 5), (512, 5)],
)
def test_ms_ssim_scales(side, scales):
    assert ms_ssim_scales(side, 1000) == scales
    assert ms_ssim_scales(1000, side) == scales


@pytest.mark.parametrize("side", [3, 8, 11, 15, 24, 50, 100, 160])
def test_ms_ssim_small_images_defined(side):
    clean, noisy = _pair(2, side, side + 3, noise=0.15)
    got = ms_ssim(noisy, clean)
    assert got.shape == (2,)
    assert ((got >= 0) & (got <= 1)).all()
    torch.testing.assert_close(ms_ssim(clean, clean), torch.ones(2))


def test_ms_ssim_small_image_uses_renormalised_leading_weights():
    clean, noisy = _pair(2, 100, 120, noise=0.15)  # 4 scales fit
    w4 = [w / sum(MS_SSIM_WEIGHTS[:4]) for w in MS_SSIM_WEIGHTS[:4]]
    torch.testing.assert_close(ms_ssim(noisy, clean), ms_ssim(noisy, clean, weights=w4))


def test_ms_ssim_single_scale_is_clipped_ssim():
    clean, noisy = _pair(3, 15, 18, noise=0.3)
    want = ssim(noisy, clean).clamp(min=0)
    torch.testing.assert_close(ms_ssim(noisy, clean), want, atol=1e-6, rtol=0)


def test_ms_ssim_below_window_shrinks_window():
    clean, noisy = _pair(2, 8, 9, noise=0.3)
    want = ssim(noisy, clean, win_size=7).clamp(min=0)
    torch.testing.assert_close(ms_ssim(noisy, clean), want, atol=1e-6, rtol=0)


def test_ms_ssim_more_noise_is_lower():
    clean, weak = _pair(2, 64, 64, noise=0.05)
    _, strong = _pair(2, 64, 64, noise=0.25)
    assert (ms_ssim(strong, clean) < ms_ssim(weak, clean)).all()


def test_ms_ssim_rejects_bad_weights():
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(UsdenoiseError, match="weights"):
        ms_ssim(x, x, weights=[])
    with pytest.raises(UsdenoiseError, match="weights"):
        ms_ssim(x, x, weights=[0.5, -0.1])


# ------------------------------------------------------------------------------ ROIs


def test_box_mask():
    m = box_mask((6, 8), 1, 2, 4, 5)
    assert m.dtype == torch.bool and m.shape == (6, 8)
    assert m.sum() == 9 and m[1:4, 2:5].all()
    assert box_mask((3, 6, 8), 1, 2, 4, 5).shape == (3, 6, 8)
    with pytest.raises(UsdenoiseError, match="outside"):
        box_mask((6, 8), 1, 2, 7, 5)
    with pytest.raises(UsdenoiseError, match="empty"):
        box_mask((6, 8), 3, 2, 3, 5)


def _ellipse_mask(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).long()


def test_square_dilation_and_erosion_match_scipy():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(2, 37, 53, generator=g) > 0.97
    masks[1, 5:20, 10:40] = True
    for radius in (1, 3, 8):
        square = np.ones((1, 2 * radius + 1, 2 * radius + 1), dtype=bool)
        expected = ndimage.binary_dilation(masks.numpy(), structure=square)
        assert np.array_equal(_dilate(masks, radius).numpy(), expected)
        # outside the image is foreground for erosion (the head may touch the border)
        eroded = ndimage.binary_erosion(masks.numpy(), structure=square, border_value=1)
        assert np.array_equal(_erode(masks, radius).numpy(), eroded)


def test_head_background_rois_geometry():
    mask = _ellipse_mask(100, 120, 50, 60, 30, 40)
    mask[45:55, 58:62] = 2  # a midline class inside the head counts as head
    head, background = head_background_rois(mask, margin=3, ring=6)
    assert head.shape == background.shape == mask.shape
    assert head.dtype == torch.bool and background.dtype == torch.bool
    assert (mask[head] > 0).all()
    assert (mask[background] == 0).all()
    assert not (head & background).any()
    # every head pixel is >= margin px from the outside; every ring pixel >= margin px from head
    outside = (mask == 0).numpy()
    dist_out = ndimage.distance_transform_cdt(~outside, metric="chessboard")
    dist_in = ndimage.distance_transform_cdt(outside, metric="chessboard")
    assert dist_out[head.numpy()].min() > 3
    assert dist_in[background.numpy()].min() > 3
    assert dist_in[background.numpy()].max() <= 9
    assert head[50, 60] and background[50, 60 + 40 + 5]


def test_head_background_rois_batch_classes_and_within():
    masks = torch.stack(
        [_ellipse_mask(64, 64, 32, 32, 15, 20), _ellipse_mask(64, 64, 30, 34, 18, 12)]
    )
    head, background = head_background_rois(masks)
    assert head.shape == (2, 64, 64)
    for i in range(2):
        h1, b1 = head_background_rois(masks[i])
        assert torch.equal(head[i], h1) and torch.equal(background[i], b1)
    labels = masks * 2  # PSFHS-style: head is class 2
    labels[:, :5, :5] = 1
    h2, _ = head_background_rois(labels, head_classes=(2,))
    assert not h2[:, :5, :5].any()
    within = torch.zeros(64, 64, dtype=torch.bool)
    within[:, :32] = True
    _, b3 = head_background_rois(masks, within=within)
    assert not b3[:, :, 32:].any() and b3.any()


def test_head_background_rois_errors():
    with pytest.raises(UsdenoiseError, match="head region is empty"):
        head_background_rois(torch.zeros(32, 32, dtype=torch.long))
    with pytest.raises(UsdenoiseError, match="background region is empty"):
        head_background_rois(torch.ones(32, 32, dtype=torch.long))
    with pytest.raises(UsdenoiseError, match="integer class mask"):
        head_background_rois(torch.ones(32, 32))
    with pytest.raises(UsdenoiseError, match=r"\[H, W\]"):
        head_background_rois(torch.ones(1, 1, 32, 32, dtype=torch.long))


# ------------------------------------------------------------------------------ no reference


def _roi_np(x: torch.Tensor, roi: torch.Tensor) -> np.ndarray:
    return _np(x[0, 0])[roi.numpy()]


def test_enl_of_gamma_speckle_is_the_number_of_looks():
    g = torch.Generator().manual_seed(3)
    roi = box_mask((160, 160), 16, 16, 144, 144)
    for looks in (1.0, 4.0, 10.0):
        # x = c·g with g ~ Gamma(L, 1/L): mean c, variance c²/L, so ENL = L
        gam = torch._standard_gamma(torch.full((1, 1, 160, 160), looks), generator=g) / looks
        x = 0.3 * gam
        assert enl(x, roi).item() == pytest.approx(looks, rel=0.08)


def test_enl_cnr_ssi_match_numpy_formulas():
    clean, noisy = _pair(1, 40, 40, noise=0.2)
    denoised = torch.from_numpy(ndimage.uniform_filter(_np(noisy[0, 0]), 3)).float()[None, None]
    a = box_mask((40, 40), 2, 2, 18, 20)
    b = box_mask((40, 40), 22, 5, 38, 35)
    va, vb = _roi_np(noisy, a), _roi_np(noisy, b)
    assert enl(noisy, a).item() == pytest.approx(va.mean() ** 2 / va.var(), rel=1e-5)
    want = abs(va.mean() - vb.mean()) / math.sqrt(va.var() + vb.var())
    assert cnr(noisy, a, b).item() == pytest.approx(want, rel=1e-5)
    vd = _roi_np(denoised, a)
    want = (vd.std() / vd.mean()) / (va.std() / va.mean())
    assert ssi(noisy, denoised, a).item() == pytest.approx(want, rel=1e-5)
    assert ssi(noisy, denoised, a).item() < 1  # smoothing suppresses speckle
    assert ssi(noisy, noisy, a).item() == pytest.approx(1.0)


def test_enl_constant_region_and_cnr_of_equal_constants():
    x = torch.full((1, 1, 8, 8), 0.5)
    roi = box_mask((8, 8), 0, 0, 4, 4)
    assert math.isinf(enl(x, roi).item())
    assert cnr(x, roi, box_mask((8, 8), 4, 4, 8, 8)).item() == 0.0


def _gcnr_numpy(a: np.ndarray, b: np.ndarray, bins: int = 256) -> float:
    # the estimator of the CUBDL challenge code (Rodriguez-Molares et al. 2019 gCNR)
    _, edges = np.histogram(np.concatenate((a, b)), bins=bins)
    f, _ = np.histogram(a, bins=edges, density=True)
    g, _ = np.histogram(b, bins=edges, density=True)
    f /= f.sum()
    g /= g.sum()
    return float(1 - np.minimum(f, g).sum())


def test_gcnr_matches_numpy_histogram_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(2, 1, 128, 64)
    x[:, :, :64] = 0.3 + 0.1 * torch.randn(2, 1, 64, 64, generator=g)
    x[:, :, 64:] = 0.5 + 0.1 * torch.randn(2, 1, 64, 64, generator=g)
    a = box_mask((128, 64), 0, 0, 64, 64)
    b = box_mask((128, 64), 64, 0, 128, 64)
    for bins in (256, 50):
        got = gcnr(x, a, b, bins=bins)
        for i in range(2):
            want = _gcnr_numpy(_np(x[i, 0])[a.numpy()], _np(x[i, 0])[b.numpy()], bins)
            assert got[i].item() == pytest.approx(want, abs=1e-3)
    assert 0.3 < got[0].item() < 0.9


def test_gcnr_extremes():
    g = torch.Generator().manual_seed(2)
    a = box_mask((64, 64), 0, 0, 32, 64)
    b = box_mask((64, 64), 32, 0, 64, 64)
    disjoint = torch.cat([0.2 * torch.rand(1, 1, 32, 64, generator=g),
                          0.6 + 0.2 * torch.rand(1, 1, 32, 64, generator=g)], dim=2)
    assert gcnr(disjoint, a, b).item() == pytest.approx(1.0)
    same = torch.rand(1, 1, 32, 64, generator=g)
    assert gcnr(torch.cat([same, same], dim=2), a, b).item() == pytest.approx(0.0, abs=1e-12)
    # same distribution, different samples: overlap close to 1 (estimator noise only)
    iid = torch.rand(1, 1, 64, 64, generator=g)
    assert gcnr(iid, a, b, bins=32).item() < 0.1
    assert gcnr(torch.full((1, 1, 64, 64), 0.4), a, b).item() == 0.0


def test_epi_matches_numpy_and_properties():
    clean, noisy = _pair(2, 48, 40, noise=0.1)
    got = epi(noisy, clean)
    for i in range(2):
        lx = ndimage.laplace(_np(noisy[i, 0]))[1:-1, 1:-1].ravel()
        lr = ndimage.laplace(_np(clean[i, 0]))[1:-1, 1:-1].ravel()
        assert got[i].item() == pytest.approx(np.corrcoef(lx, lr)[0, 1], rel=1e-5)
    torch.testing.assert_close(epi(clean, clean), torch.ones(2))
    # blurring removes edges
    blurred = torch.from_numpy(ndimage.gaussian_filter(_np(clean), (0, 0, 2, 2))).float()
    assert (epi(blurred, clean) < 0.9).all()


def test_epi_with_roi_matches_numpy():
    clean, noisy = _pair(1, 40, 40, noise=0.1)
    roi = box_mask((40, 40), 0, 5, 25, 30)  # touches the border: border rows are left out
    inner = roi.numpy()[1:-1, 1:-1]
    lx = ndimage.laplace(_np(noisy[0, 0]))[1:-1, 1:-1][inner]
    lr = ndimage.laplace(_np(clean[0, 0]))[1:-1, 1:-1][inner]
    want = np.corrcoef(lx, lr)[0, 1]
    assert epi(noisy, clean, roi=roi).item() == pytest.approx(want, rel=1e-5)


def test_epi_constant_image_is_nan():
    x = torch.full((1, 1, 16, 16), 0.5)
    assert math.isnan(epi(x, x).item())


# ------------------------------------------------------------------------------ batching, registry


def _all_metrics(x, ref, a, b):
    return {
        "psnr": psnr(x, ref), "ssim": ssim(x, ref), "ms_ssim": ms_ssim(x, ref),
        "enl": enl(x, a), "cnr": cnr(x, a, b), "gcnr": gcnr(x, a, b),
        "ssi": ssi(ref, x, a), "epi": epi(x, ref),
    }


def test_batch_equals_one_by_one_and_2d_roi_broadcasts():
    clean, noisy = _pair(3, 36, 44, noise=0.15)
    a = box_mask((36, 44), 2, 2, 16, 20)
    b = box_mask((36, 44), 20, 20, 34, 42)
    batched = _all_metrics(noisy, clean, a, b)
    per_image_roi = _all_metrics(noisy, clean, a.expand(3, -1, -1), b.expand(3, -1, -1))
    assert set(batched) == set(METRICS)
    for name, value in batched.items():
        assert value.shape == (3,) and value.dtype == torch.float32, name
        torch.testing.assert_close(value, per_image_roi[name], msg=name)
        for i in range(3):
            single = _all_metrics(noisy[i : i + 1], clean[i : i + 1], a, b)[name]
            torch.testing.assert_close(value[i : i + 1], single, atol=1e-5, rtol=1e-5, msg=name)


def test_registry():
    full = {n for n, m in METRICS.items() if m.needs_reference}
    assert full == {"psnr", "ssim", "ms_ssim"}
    clean, noisy = _pair(1, 20, 20)
    torch.testing.assert_close(METRICS["psnr"](noisy, clean), psnr(noisy, clean))
    for name, m in METRICS.items():
        assert m.summary and callable(m) and m.inputs, name
    assert METRICS["ssi"].higher_is_better is False
    from usdenoise.cli.listing import families

    assert {name for name, _ in families()["Metrics"]} == set(METRICS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    clean, noisy = _pair(2, 170, 170, noise=0.15)
    a = box_mask((170, 170), 2, 2, 80, 80)
    b = box_mask((170, 170), 90, 90, 160, 160)
    cpu = _all_metrics(noisy, clean, a, b)
    gpu = _all_metrics(noisy.cuda(), clean.cuda(), a.cuda(), b)  # a mask on either device works
    for name in cpu:
        assert gpu[name].device.type == "cuda"
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], atol=1e-4, rtol=1e-4, msg=name)


# ------------------------------------------------------------------------------ bad input


def test_shape_mismatch_and_bad_tensors():
    x = torch.rand(2, 1, 16, 16)
    for fn in (psnr, ssim, ms_ssim, epi):
        with pytest.raises(UsdenoiseError, match="shape mismatch"):
            fn(x, torch.rand(2, 1, 16, 17))
    with pytest.raises(UsdenoiseError, match="shape mismatch"):
        ssi(x, torch.rand(1, 1, 16, 16), box_mask((16, 16), 0, 0, 4, 4))
    with pytest.raises(UsdenoiseError, match=r"\[B, 1, H, W\]"):
        psnr(x[0], x[0])
    with pytest.raises(UsdenoiseError, match="float"):
        psnr((x * 255).to(torch.uint8), (x * 255).to(torch.uint8))
    with pytest.raises(UsdenoiseError, match="torch.Tensor"):
        psnr(x.numpy(), x)
    with pytest.raises(UsdenoiseError, match="one channel"):
        enl(torch.rand(1, 3, 16, 16), box_mask((16, 16), 0, 0, 4, 4))


def test_empty_and_misshapen_rois():
    x = torch.rand(2, 1, 16, 16)
    empty = torch.zeros(16, 16, dtype=torch.bool)
    ok = box_mask((16, 16), 0, 0, 8, 8)
    with pytest.raises(UsdenoiseError, match="roi: region is empty"):
        enl(x, empty)
    with pytest.raises(UsdenoiseError, match="roi_b: region is empty"):
        cnr(x, ok, empty)
    with pytest.raises(UsdenoiseError, match="roi_a: region is empty"):
        gcnr(x, empty, ok)
    with pytest.raises(UsdenoiseError, match="roi: region is empty"):
        ssi(x, x, empty)
    with pytest.raises(UsdenoiseError, match="roi: region is empty"):
        epi(x, x, roi=empty)
    one_empty = torch.stack([ok, empty])
    with pytest.raises(UsdenoiseError, match=r"in image\(s\) 1"):
        enl(x, one_empty)
    with pytest.raises(UsdenoiseError, match="does not fit"):
        enl(x, torch.ones(16, 15, dtype=torch.bool))
    with pytest.raises(UsdenoiseError, match="does not fit"):
        enl(x, torch.ones(3, 16, 16, dtype=torch.bool))
    with pytest.raises(UsdenoiseError, match="boolean mask"):
        enl(x, ok.float() * 0.5)
    # 0/1 integer masks are accepted
    torch.testing.assert_close(enl(x, ok.long()), enl(x, ok))
    with pytest.raises(UsdenoiseError, match="bins"):
        gcnr(x, ok, ~ok, bins=0)


def test_module_exports():
    for name in metrics.__all__:
        assert hasattr(metrics, name)
