"""Phantom: deterministic, any size, mask/HC consistent with the drawn ellipse, fast."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data.hc18 import head_circumference_mm
from usdenoise.data.phantom import PhantomDataset, ellipse_perimeter, make_phantom


def test_ramanujan_perimeter_matches_numeric_integral():
    for a, b in [(1.0, 1.0), (3.0, 1.0), (50.0, 40.0)]:
        t = np.linspace(0, 2 * np.pi, 200001)
        numeric = np.trapezoid(np.hypot(a * np.sin(t), b * np.cos(t)), t)
        assert ellipse_perimeter(a, b) == pytest.approx(numeric, rel=1e-4)
    assert ellipse_perimeter(2, 2) == pytest.approx(4 * math.pi)


def test_same_seed_same_scene_different_seed_different():
    a = make_phantom(64, seed=5, fan=True, structures=True)
    b = make_phantom(64, seed=5, fan=True, structures=True)
    c = make_phantom(64, seed=6, fan=True, structures=True)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert a["hc_mm"] == b["hc_mm"]
    assert not torch.equal(a["image"], c["image"])


@pytest.mark.parametrize("size", [32, (48, 80), (100, 60), 256])
def test_any_size_range_and_dtypes(size):
    s = make_phantom(size, seed=1, structures=True)
    h, w = (size, size) if isinstance(size, int) else size
    assert s["image"].shape == (1, h, w) and s["image"].dtype == torch.float32
    assert s["mask"].shape == (h, w) and s["mask"].dtype == torch.int64
    assert 0.0 <= s["image"].min() and s["image"].max() <= 1.0
    assert set(s["mask"].unique().tolist()) <= {0, 1, 2, 3}
    spacing = 150.0 / max(h, w)
    assert s["spacing_mm"] == pytest.approx((spacing, spacing))


def test_geometry_independent_of_size():
    small, large = make_phantom(128, seed=9), make_phantom(512, seed=9)
    assert small["hc_mm"] == pytest.approx(large["hc_mm"], rel=1e-6)
    assert small["ellipse"][4] == pytest.approx(large["ellipse"][4])


@pytest.mark.parametrize("seed", range(8))
def test_hc_from_mask_matches_known_hc(seed):
    s = make_phantom(256, seed=seed, fan=seed % 2 == 1)
    measured = head_circumference_mm(s["mask"], s["spacing_mm"])
    assert measured == pytest.approx(s["hc_mm"], rel=0.02)
    # the whole head lies inside the image: the mask does not touch the border
    m = s["mask"]
    assert m[0].sum() == m[-1].sum() == m[:, 0].sum() == m[:, -1].sum() == 0


def test_structures_lie_inside_head_and_scene_contrast():
    s = make_phantom(256, seed=2, structures=True)
    mask, image = s["mask"], s["image"][0]
    assert (mask == 2).sum() > 20 and (mask == 3).sum() > 20
    plain = make_phantom(256, seed=2)["mask"]
    assert torch.equal(plain > 0, mask > 0)  # structures only relabel head pixels
    cx, cy, a, b, angle = s["ellipse"]
    ys, xs = torch.meshgrid(torch.arange(256) + 0.5, torch.arange(256) + 0.5, indexing="ij")
    t = math.radians(angle)
    p = (xs - cx) * math.cos(t) + (ys - cy) * math.sin(t)
    q = -(xs - cx) * math.sin(t) + (ys - cy) * math.cos(t)
    r = torch.sqrt((p / a) ** 2 + (q / b) ** 2)
    skull = image[(r > 0.96) & (r < 0.99)].mean()
    brain = image[r < 0.7][(mask[r < 0.7] == 1)].mean()
    assert skull > 2 * brain  # bright ring around darker brain


def test_fan_zero_outside_and_head_inside():
    s = make_phantom(128, seed=4, fan=True)
    fan = s["fan"]
    assert fan.dtype == torch.bool and 0.3 < fan.float().mean() < 0.95
    assert s["image"][0][~fan].abs().max() == 0
    assert bool(fan[s["mask"] > 0].all())


def test_depth_attenuation_darkens_deep_tissue():
    deep, shallow = [], []
    for seed in range(6):
        img = make_phantom(128, seed=seed)["image"][0]
        shallow.append(img[20:40].mean())
        deep.append(img[-20:].mean())
    assert np.mean(deep) < np.mean(shallow)


def test_bad_arguments():
    with pytest.raises(UsdenoiseError, match="at least 16"):
        make_phantom(8, seed=0)
    with pytest.raises(UsdenoiseError, match="seed"):
        make_phantom(64, seed=-1)
    with pytest.raises(UsdenoiseError, match="size"):
        make_phantom("big", seed=0)


def test_dataset_subjects_and_determinism():
    ds = PhantomDataset(5, size=64, seed=3, structures=True)
    assert len(ds) == 5 and ds.subjects == ds.ids and len(set(ds.ids)) == 5
    assert ds.num_classes == 4 and ds.class_names[-1] == "ventricles"
    assert torch.equal(ds[2]["image"], PhantomDataset(5, size=64, seed=3)[2]["image"])
    assert not torch.equal(ds[1]["image"], ds[2]["image"])
    assert ds[-1]["id"] == ds.ids[4]
    with pytest.raises(IndexError):
        ds[5]


def test_fast_enough():
    make_phantom(256, seed=0)
    start = time.perf_counter()
    for seed in range(20):
        make_phantom(256, seed=seed)
    per_image = (time.perf_counter() - start) / 20
    assert per_image < 0.05  # typically ~2.5 ms; generous bound for a busy CI machine
