"""Zenodo colour masks: colour -> class with tolerance, unmatched pixels reported, layouts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data import load_dataset
from usdenoise.data.zenodo import CLASS_COLOURS, colour_mask_to_classes


def _labels(h=66, w=96):
    lab = np.zeros((h, w), np.uint8)
    cv2.ellipse(lab, (w // 2, h // 2), (w // 3, h // 3), 0, 0, 360, 1, -1)  # brain
    lab[h // 2 - 4:h // 2 + 4, w // 2 - 10:w // 2 - 2] = 2  # CSP
    lab[h // 2 - 3:h // 2 + 3, w // 2 + 4:w // 2 + 14] = 3  # LV
    return lab.astype(np.int64)


def _rgb(lab):
    """RGB mask as stored (R, G, B order)."""
    return np.asarray(CLASS_COLOURS, np.uint8)[lab]


def _write_rgb(path, rgb, quality=None):
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality else []
    assert cv2.imwrite(str(path), bgr, params)


def test_exact_colours_map_to_classes():
    lab = _labels()
    out, unmatched = colour_mask_to_classes(_rgb(lab))
    assert np.array_equal(out, lab) and unmatched == 0


def test_jpeg_damage_is_tolerated_and_blends_are_counted(tmp_path):
    lab = _labels(200, 300)
    _write_rgb(tmp_path / "m.jpg", _rgb(lab), quality=70)
    damaged = cv2.imread(str(tmp_path / "m.jpg"))[..., ::-1]
    assert not np.array_equal(damaged, _rgb(lab))  # JPEG really changed the colours
    out, unmatched = colour_mask_to_classes(damaged)
    assert (out == lab).mean() > 0.98  # nearly every pixel gets its class back
    # a blend halfway between red and green matches neither within the tolerance
    blend = np.full((4, 4, 3), (128, 128, 0), np.uint8)
    out, unmatched = colour_mask_to_classes(blend)
    assert unmatched == 16


def test_bilinear_resize_damage_counted():
    rgb = _rgb(_labels())
    blurred = cv2.resize(rgb, (40, 30), interpolation=cv2.INTER_LINEAR)
    out, unmatched = colour_mask_to_classes(blurred, tolerance=30)
    assert 0 < unmatched < out.size // 4
    assert set(np.unique(out)) <= {0, 1, 2, 3}


def _make_layout(root, *, image_dir="images", mask_dir="masks", mask_suffix="", n=3,
                 jpeg_masks=False):
    (root / image_dir).mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.random.default_rng(i).integers(0, 255, (66, 96), dtype=np.uint8)
        cv2.imwrite(str(root / image_dir / f"case{i}.png"), img)
        ext = ".jpg" if jpeg_masks else ".png"
        _write_rgb(root / mask_dir / f"case{i}{mask_suffix}{ext}", _rgb(_labels()),
                   quality=60 if jpeg_masks else None)
    return root


def test_dataset_images_masks_layout(tmp_path):
    root = _make_layout(tmp_path / "z")
    ds = load_dataset(f"zenodo:{root}", size=33)
    assert ds.ids == ["case0", "case1", "case2"] and ds.subjects == ds.ids
    assert ds.class_names == ("background", "brain", "csp", "lv") and ds.num_classes == 4
    s = ds[0]
    assert s["image"].shape == (1, 33, 33) and s["mask"].shape == (33, 33)
    assert set(s["mask"].unique().tolist()) <= {0, 1, 2, 3} and s["unmatched_pixels"] == 0
    assert ds.total_unmatched_pixels == 0


def test_dataset_jpeg_masks_warn_and_count(tmp_path):
    root = _make_layout(tmp_path / "z", image_dir="Images", mask_dir="Annotations",
                        mask_suffix="_Annotation", jpeg_masks=True)
    ds = load_dataset(f"zenodo:{root}", tolerance=20)
    with pytest.warns(UserWarning, match=r"case1_Annotation.jpg: \d+ pixels match no class"):
        s = ds[1]
    assert s["unmatched_pixels"] > 0 and ds.unmatched_pixels["case1"] == s["unmatched_pixels"]
    assert (s["mask"].numpy() == _labels()).mean() > 0.97


def test_nested_and_flat_layouts(tmp_path):
    _make_layout(tmp_path / "nested" / "dataset", n=2)
    assert len(load_dataset(f"zenodo:{tmp_path / 'nested'}")) == 2
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "a.png"), np.zeros((66, 96), np.uint8))
    _write_rgb(flat / "a_mask.png", _rgb(_labels()))
    ds = load_dataset(f"zenodo:{flat}")
    assert ds.ids == ["a"] and ds[0]["mask"].max() == 3


def test_bad_input(tmp_path):
    root = _make_layout(tmp_path / "z", n=2)
    (root / "masks" / "case1.png").unlink()
    with pytest.raises(UsdenoiseError, match="case1.png: no mask"):
        load_dataset(f"zenodo:{root}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsdenoiseError, match=f"{tmp_path / 'empty'}: no images found"):
        load_dataset(f"zenodo:{tmp_path / 'empty'}")
    with pytest.raises(UsdenoiseError, match="tolerance"):
        load_dataset(f"zenodo:{root}", tolerance=0)
    root = _make_layout(tmp_path / "y", n=1)
    _write_rgb(root / "masks" / "case0.png", _rgb(_labels(60, 96)))
    with pytest.raises(UsdenoiseError, match="case0.png: mask is 96x60, but image"):
        load_dataset(f"zenodo:{root}")[0]
