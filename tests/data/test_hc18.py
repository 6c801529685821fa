"""HC18: outline filling (closed and open), CSV, subjects, bad input; real data when present."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import binary_fill_holes

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data import load_dataset
from usdenoise.data.hc18 import HC18Dataset, fill_outline, head_circumference_mm
from usdenoise.data.phantom import ellipse_perimeter

OPEN_OUTLINES = ("186_HC", "346_HC", "628_2HC", "787_HC")


def _outline(h, w, center, axes, angle):
    ann = np.zeros((h, w), np.uint8)
    cv2.ellipse(ann, center, axes, angle, 0, 360, 255, thickness=1)
    return ann


def test_fill_closed_outline_matches_filled_ellipse():
    ann = _outline(120, 160, (80, 60), (50, 30), 20)
    mask, how = fill_outline(ann)
    assert how == "fill" and set(np.unique(mask)) == {0, 1}
    # reference: scipy hole filling, as the HC18 README suggests for closed outlines
    assert np.array_equal(mask.astype(bool), binary_fill_holes(ann > 127))
    assert mask[ann > 0].all()  # the outline belongs to the head


def test_fill_open_outline_fits_the_ellipse():
    ann = _outline(120, 160, (80, 100), (60, 35), 10)  # runs off the bottom edge
    mask, how = fill_outline(ann)
    assert how == "ellipse"
    ref = np.zeros_like(ann)
    cv2.ellipse(ref, (80, 100), (60, 35), 10, 0, 360, 1, thickness=-1)
    inter, union = (mask & ref).sum(), (mask | ref).sum()
    assert inter / union > 0.97


@pytest.mark.parametrize("ann,what", [
    (np.zeros((50, 50), np.uint8), "outline pixels"),
    (np.eye(50, dtype=np.uint8) * 255, "cannot be filled"),  # an open straight line
])
def test_unfillable_annotation(ann, what):
    with pytest.raises(UsdenoiseError, match=f"ann.png: annotation cannot be filled.*{what}|"
                                             f"ann.png: .*{what}"):
        fill_outline(ann, name="ann.png")


def test_head_circumference_of_a_drawn_ellipse_and_anisotropic_spacing():
    mask = np.zeros((400, 400), np.uint8)
    cv2.ellipse(mask, (200, 200), (150, 100), 0, 0, 360, 1, thickness=-1)
    hc = head_circumference_mm(mask, 0.2)
    assert hc == pytest.approx(ellipse_perimeter(150 * 0.2, 100 * 0.2), rel=0.01)
    squeezed = cv2.resize(mask, (400, 200), interpolation=cv2.INTER_NEAREST)  # rows halved
    assert head_circumference_mm(squeezed, (0.4, 0.2)) == pytest.approx(hc, rel=0.01)


def _make_hc18(root, n=3, *, size=(60, 80), csv_rows=None, ann_size=None):
    ts = root / "training_set"
    ts.mkdir(parents=True)
    names = ["001_HC", "001_2HC", "002_HC"][:n]
    for name in names:
        img = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
        cv2.imwrite(str(ts / f"{name}.png"), img)
        ann_hw = ann_size or size
        cv2.imwrite(str(ts / f"{name}_Annotation.png"),
                    _outline(*ann_hw, (ann_hw[1] // 2, ann_hw[0] // 2), (20, 15), 0))
    rows = csv_rows if csv_rows is not None else [f"{n}.png,0.1,50.0" for n in names]
    (root / "training_set_pixel_size_and_HC.csv").write_text(
        "filename,pixel size(mm),head circumference (mm)\n" + "\n".join(rows) + "\n")
    return root


def test_small_layout_subjects_spacing_resize(tmp_path):
    root = _make_hc18(tmp_path / "hc18")
    ds = load_dataset(f"hc18:{root}", size=(30, 20))
    assert ds.ids == ["001_2HC", "001_HC", "002_HC"]
    assert ds.subjects == ["001", "001", "002"] and ds.num_classes == 2
    s = ds[1]
    assert s["image"].shape == (1, 30, 20) and s["mask"].shape == (30, 20)
    assert s["spacing_mm"] == pytest.approx((0.2, 0.4)) and s["hc_mm"] == 50.0
    assert set(s["mask"].unique().tolist()) == {0, 1}
    # the training_set folder itself works too
    assert len(HC18Dataset(root / "training_set")) == 3


def test_missing_csv_row_names_the_image(tmp_path):
    root = _make_hc18(tmp_path / "hc18", csv_rows=["001_HC.png,0.1,50", "002_HC.png,0.1,50"])
    with pytest.raises(UsdenoiseError, match="001_2HC.png: no row for 001_2HC.png"):
        load_dataset(f"hc18:{root}")


def test_bad_csv_value(tmp_path):
    root = _make_hc18(tmp_path / "hc18", n=1, csv_rows=["001_HC.png,abc,50"])
    with pytest.raises(UsdenoiseError, match="line 2"):
        load_dataset(f"hc18:{root}")


def test_image_annotation_size_mismatch(tmp_path):
    root = _make_hc18(tmp_path / "hc18", n=1, ann_size=(64, 80))
    ds = load_dataset(f"hc18:{root}")
    with pytest.raises(UsdenoiseError, match="001_HC_Annotation.png: mask is 80x64, but image"):
        ds[0]


def test_missing_annotation_and_unfillable_annotation(tmp_path):
    root = _make_hc18(tmp_path / "a", n=1)
    (root / "training_set" / "001_HC_Annotation.png").unlink()
    with pytest.raises(UsdenoiseError, match="001_HC.png: annotation 001_HC_Annotation.png"):
        load_dataset(f"hc18:{root}")
    root = _make_hc18(tmp_path / "b", n=1)
    cv2.imwrite(str(root / "training_set" / "001_HC_Annotation.png"), np.zeros((60, 80), np.uint8))
    with pytest.raises(UsdenoiseError, match="001_HC_Annotation.png: annotation cannot be filled"):
        load_dataset(f"hc18:{root}")[0]


def test_missing_csv_and_empty_folder(tmp_path):
    (tmp_path / "x" / "training_set").mkdir(parents=True)
    with pytest.raises(UsdenoiseError, match="training_set_pixel_size_and_HC.csv not found"):
        load_dataset(f"hc18:{tmp_path / 'x'}")
    (tmp_path / "x" / "training_set_pixel_size_and_HC.csv").write_text("filename,pixel size\n")
    with pytest.raises(UsdenoiseError, match="no images"):
        load_dataset(f"hc18:{tmp_path / 'x'}")


# ---- the real data set (skips without ../shared/data/hc18) ------------------------------

@pytest.fixture
def hc18_dataset(hc18_root):
    return HC18Dataset(hc18_root)


def test_real_listing(hc18_dataset):
    assert len(hc18_dataset) == 713
    assert len(set(hc18_dataset.subjects)) == 564
    assert all(i.split("_")[0] == s for i, s in zip(hc18_dataset.ids, hc18_dataset.subjects,
                                                    strict=True))


def test_real_sample_masks_and_hc(hc18_dataset):
    from usdenoise.io import read_raw

    index = {i: k for k, i in enumerate(hc18_dataset.ids)}
    sample_ids = hc18_dataset.ids[::48]
    errors = []
    for image_id in sample_ids:
        s = hc18_dataset[index[image_id]]
        mask = s["mask"]
        assert mask.shape == s["image"].shape[-2:] and mask.sum() > 1000
        outline = torch.from_numpy(read_raw(hc18_dataset.items[index[image_id]].mask) > 127)
        assert bool((mask[outline] == 1).all())  # outline pixels are inside the head
        ys, xs = torch.nonzero(outline, as_tuple=True)
        inside = mask.bool()
        # the filled area lies within the outline's bounding box
        assert not inside[: ys.min()].any() and not inside[ys.max() + 1:].any()
        assert not inside[:, : xs.min()].any() and not inside[:, xs.max() + 1:].any()
        hc = head_circumference_mm(mask, s["spacing_mm"])
        errors.append(abs(hc - s["hc_mm"]) / s["hc_mm"])
    assert max(errors) < 0.03, errors


def test_real_open_outlines_fill_to_an_ellipse(hc18_dataset):
    from usdenoise.io import read_raw

    index = {i: k for k, i in enumerate(hc18_dataset.ids)}
    for image_id in OPEN_OUTLINES:
        item = hc18_dataset.items[index[image_id]]
        outline = read_raw(item.mask)
        mask, how = fill_outline(outline)
        assert how == "ellipse", image_id
        # the outline is open: plain hole filling gives (almost) nothing but the outline
        assert binary_fill_holes(outline > 127).sum() < 2 * (outline > 127).sum()
        area_ratio = mask.sum() / mask.size
        assert 0.05 < area_ratio < 0.9, (image_id, area_ratio)
        hc = head_circumference_mm(mask, item.spacing_mm)
        # the part of the ellipse beyond the border is cut, so the fitted HC of the clipped
        # mask may be a little off; the reference HC is still within a few per cent
        assert hc == pytest.approx(item.hc_mm, rel=0.06), image_id


def test_real_resized_256(hc18_root):
    ds = load_dataset(f"hc18:{hc18_root}", size=256)
    s = ds[0]
    assert s["image"].shape == (1, 256, 256) and s["mask"].shape == (256, 256)
    assert set(s["mask"].unique().tolist()) == {0, 1}
    hc = head_circumference_mm(s["mask"], s["spacing_mm"])
    assert hc == pytest.approx(s["hc_mm"], rel=0.03)
