"""Real-scan (no-reference) figures against cases whose answer is known: speckle index and ENL
of built patches, gamma speckle, step-edge contrast, white and anatomical residuals; the patch
finder; properties (a Lee filter lowers the index, identity changes nothing)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data.phantom import make_phantom
from usdenoise.denoise.registry import make_denoiser
from usdenoise.metrics import noreference as nr
from usdenoise.noise.speckle import add_speckle


def _checker(shape: tuple[int, int], mean: float, dev: float) -> np.ndarray:
    """mean ± dev in a checkerboard: population σ = dev, μ = mean, exactly."""
    yy, xx = np.indices(shape)
    return np.where((yy + xx) % 2 == 0, mean + dev, mean - dev)


def test_speckle_index_and_enl_of_built_patches() -> None:
    image = np.zeros((64, 64))
    image[:32, :32] = _checker((32, 32), 0.5, 0.1)  # σ/μ = 0.2, μ²/σ² = 25
    image[32:, 32:] = _checker((32, 32), 0.4, 0.2)  # σ/μ = 0.5, μ²/σ² = 4
    patches = [nr.Patch(0, 0, 32, 32), nr.Patch(32, 32, 64, 64)]
    assert nr.speckle_index(image, patches) == pytest.approx((0.2 + 0.5) / 2, rel=1e-12)
    assert nr.patch_enl(image, patches) == pytest.approx((25 + 4) / 2, rel=1e-12)
    flat = [nr.Patch(0, 32, 32, 64)]  # zeros: no mean, no index
    assert nr.speckle_index(image, flat) is None
    image[0:32, 32:64] = 0.25  # exact in binary: σ = 0
    assert nr.speckle_index(image, flat) == 0.0 and nr.patch_enl(image, flat) == math.inf
    assert nr.speckle_index(image, []) is None and nr.patch_enl(image, []) is None


@pytest.mark.parametrize("looks", [1.0, 4.0, 10.0])
def test_enl_of_gamma_speckle_is_its_shape(looks: float) -> None:
    """Gamma(L)-distributed intensity has μ²/σ² = L; the finder keeps the flat image's tiles
    (32 px, 8 of them: 8192 samples) and ENL comes out within 8 %."""
    rng = np.random.default_rng(0)
    image = rng.gamma(looks, 0.4 / looks, size=(256, 256)).clip(0, None)
    patches = nr.find_homogeneous_patches(image, size=32, within=np.ones_like(image),
                                          min_mean=0.0, max_structure=0.2)
    assert len(patches) == 8
    assert nr.patch_enl(image, patches) == pytest.approx(looks, rel=0.08)
    assert nr.speckle_index(image, patches) == pytest.approx(1 / math.sqrt(looks), rel=0.05)


def test_finder_avoids_edges_and_dark_regions() -> None:
    rng = np.random.default_rng(1)
    image = rng.gamma(4.0, 0.5 / 4.0, size=(128, 128))
    image[:, 64:] *= 0.2  # dark right half (below the sector median): not tissue
    image[60:68, :64] = 1.0  # a bright reflector across the left half
    patches = nr.find_homogeneous_patches(image, size=16, within=np.ones_like(image))
    assert patches, "the speckled left half has flat tiles"
    for p in patches:
        assert p.x1 <= 64, p  # never in the dark half
        assert p.y1 <= 60 or p.y0 >= 68, p  # never on the reflector
        assert p.score <= 0.15
    assert [p.score for p in patches] == sorted(p.score for p in patches)


def test_no_patches_on_black_or_tiny_images() -> None:
    assert nr.find_homogeneous_patches(np.zeros((64, 64))) == []
    assert nr.find_homogeneous_patches(np.full((6, 6), 0.5), size=8) == []
    ramp = np.tile(np.linspace(0.05, 1.0, 128), (128, 1))  # all structure, no speckle
    assert nr.find_homogeneous_patches(ramp, size=64, within=np.ones_like(ramp),
                                       max_structure=0.05) == []
    with pytest.raises(UsdenoiseError, match="size"):
        nr.find_homogeneous_patches(np.ones((8, 8)), size=1)


def test_scan_sector_finds_the_fan_and_fills_dark_fluid() -> None:
    sample = make_phantom(96, seed=0, fan=True)
    sector = nr.scan_sector(sample["image"])
    fan = sample["fan"].numpy()
    assert (sector & fan).sum() / fan.sum() > 0.9
    assert (sector & ~fan).sum() / fan.sum() < 0.1
    image = np.full((64, 64), 0.5)
    image[20:40, 20:40] = 0.0  # anechoic fluid inside the sector
    assert nr.scan_sector(image).all()
    assert not nr.scan_sector(np.zeros((32, 32))).any()


def test_edge_contrast_of_a_step_edge() -> None:
    """A vertical step of height h: the border pixel's centre is 0.5 px inside the edge, where
    the Gaussian-smoothed step has slope h · φ(0.5; σ) = h / (σ√2π) · exp(−1/(8σ²))."""
    mask = np.zeros((64, 64), bool)
    mask[:, :32] = True
    mask[0, :] = mask[-1, :] = False  # only the vertical edge (the rows at 1 and 62 aside)
    image = np.where(np.indices((64, 64))[1] < 32, 0.8, 0.2)
    border = nr.mask_border(mask)
    expected = 0.6 / (2.0 * math.sqrt(2 * math.pi)) * math.exp(-1 / 32)
    grad = ndimage.gaussian_gradient_magnitude(image, 2.0, mode="reflect")
    assert grad[20:44, 31] == pytest.approx(np.full(24, expected), rel=0.02)
    assert border[20:44, 31].all() and not border[20:44, 30].any()
    assert nr.edge_contrast(image, mask) > 0
    assert nr.edge_ratio(image, image, mask) == 1.0
    assert nr.edge_contrast(image, np.zeros((64, 64))) is None
    assert nr.edge_ratio(image, image, np.zeros((64, 64))) is None


def test_edge_ratio_is_below_one_for_a_blur() -> None:
    sample = make_phantom(96, seed=2)
    image, mask = sample["image"][0].numpy(), sample["mask"].numpy() > 0
    for sigma, bound in ((1.0, 0.97), (3.0, 0.8)):
        blurred = ndimage.gaussian_filter(image, sigma)
        assert nr.edge_ratio(blurred, image, mask) < bound


def test_method_noise_correlation_white_and_anatomical() -> None:
    """A white residual is unrelated to the anatomy (|r| < 0.1); a residual equal to the
    image's gradient magnitude follows it (r > 0.8). Nothing removed: None."""
    image = make_phantom(128, seed=3)["image"][0].double().numpy()
    rng = np.random.default_rng(0)
    white = image - rng.normal(0, 0.05, image.shape)
    everywhere = np.ones(image.shape, bool)
    assert abs(nr.method_noise_correlation(image, white, within=everywhere)) < 0.1
    edges = ndimage.gaussian_gradient_magnitude(image, 1.0)
    assert nr.method_noise_correlation(image, image - edges, within=everywhere) > 0.8
    assert nr.method_noise_correlation(image, image) is None
    # the correlation does not change with the scale of the residual (any strength α)
    half = image - 0.5 * edges
    assert nr.method_noise_correlation(image, half, within=everywhere) == pytest.approx(
        nr.method_noise_correlation(image, image - edges, within=everywhere), rel=1e-9)
    with pytest.raises(UsdenoiseError, match="does not fit"):
        nr.method_noise_correlation(image, image[:10])


def test_lee_lowers_the_speckle_index_identity_changes_nothing() -> None:
    sample = make_phantom(128, seed=4)
    noisy = add_speckle(sample["image"][None], "rayleigh:0.5",
                        generator=torch.Generator().manual_seed(0))
    patches = nr.find_homogeneous_patches(noisy)
    assert patches
    before = nr.speckle_index(noisy, patches)
    after = nr.speckle_index(make_denoiser("lee").denoise(noisy), patches)
    assert after < 0.8 * before
    same = make_denoiser("noisy").denoise(noisy)
    assert nr.speckle_index(same, patches) == before
    assert nr.edge_ratio(same, noisy, sample["mask"]) == 1.0


def test_shapes_are_checked() -> None:
    with pytest.raises(UsdenoiseError, match="one image"):
        nr.as_array(np.zeros((2, 4, 4)))
    assert nr.as_array(torch.zeros(1, 1, 5, 6)).shape == (5, 6)
    with pytest.raises(UsdenoiseError, match="within"):
        nr.find_homogeneous_patches(np.ones((16, 16)), within=np.ones((8, 8)))


def test_images_without_homogeneous_patches_are_missing_and_counted(
        tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """`evaluate --no-reference` on a folder where 2 of 4 images have no homogeneous patch
    (black: no scan sector; 4 px stripes: every tile has structure): their speckle index and
    ENL are missing (empty in per_image.csv, left out of the means), the records count them
    and results.md says so; no crash, exit 0."""
    import csv
    import json

    from cli_helpers import run_cli

    from usdenoise.io import write_image

    scans = tmp_path / "scans"
    scans.mkdir()
    for i in range(2):
        sample = make_phantom(64, seed=i)
        noisy = add_speckle(sample["image"][None].float(), "rayleigh:0.3",
                            generator=torch.Generator().manual_seed(i))[0]
        write_image(scans / f"speckled{i}.png", noisy)
    stripes = torch.where((torch.arange(64) // 4) % 2 == 0, 0.15, 0.85).expand(1, 64, 64)
    write_image(scans / "stripes.png", stripes)
    write_image(scans / "black.png", torch.zeros(1, 64, 64))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "evaluate", f"folder:{scans}", "--no-reference",
                           "--methods", "median", "--size", "0", "--strengths", "none",
                           "--out", out)
    assert code == 0, err
    records = json.loads((out / "results.json").read_text())
    for r in records:
        assert r["n_images"] == 4 and r["n_missing_patches"] == 2
        assert r["speckle_index"] is not None and math.isfinite(r["speckle_index"])
    with (out / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    missing = {r["id"] for r in rows if r["speckle_index"] == ""}
    assert missing == {"stripes", "black"}
    assert "2 of 4 images without homogeneous patches" in (out / "results.md").read_text()
