"""folder:PATH: recursive images, optional masks/ with the same stems, subjects.csv."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data import load_dataset


def _img(path, h=20, w=30, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((h, w), value, np.uint8) if value is not None else \
        np.random.default_rng(0).integers(0, 255, (h, w), dtype=np.uint8)
    assert cv2.imwrite(str(path), a)


def test_recursive_images_without_masks(tmp_path):
    _img(tmp_path / "a.png")
    _img(tmp_path / "sub" / "b.jpg")
    (tmp_path / "sub" / "deeper").mkdir()
    np.save(tmp_path / "sub" / "deeper" / "c.npy", np.full((20, 30), 0.5, np.float32))
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_dataset(f"folder:{tmp_path}", size=(10, 15))
    assert ds.ids == ["a", "b", "c"] and ds.subjects == ds.ids and not ds.has_masks
    s = ds[2]
    assert "mask" not in s and s["image"].shape == (1, 10, 15)
    assert float(s["image"].mean()) == pytest.approx(0.5)
    assert s["spacing_mm"] is None


def test_masks_and_subjects(tmp_path):
    for name in ("x1", "x2", "y1"):
        _img(tmp_path / f"{name}.png")
        mask = np.zeros((20, 30), np.uint8)
        mask[5:15, 5:20] = 255
        _img(tmp_path / "masks" / f"{name}.png", value=0)
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), mask)
    (tmp_path / "subjects.csv").write_text("id,subject\nx1,X\nx2,X\ny1,Y\n")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.subjects == ["X", "X", "Y"]
    s = ds[0]
    assert set(s["mask"].unique().tolist()) == {0, 1}  # 0/255 binary masks become 0/1


def test_bad_input(tmp_path):
    with pytest.raises(UsdenoiseError, match=f"{tmp_path / 'none'}: folder not found"):
        load_dataset(f"folder:{tmp_path / 'none'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsdenoiseError, match=f"{tmp_path / 'empty'}: no supported images"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    root = tmp_path / "r"
    _img(root / "a.png")
    _img(root / "b.png")
    _img(root / "masks" / "a.png", value=1)
    with pytest.raises(UsdenoiseError, match="b.png: no mask named b"):
        load_dataset(f"folder:{root}")
    _img(root / "masks" / "b.png", h=21, value=1)
    with pytest.raises(UsdenoiseError, match="b.png: mask is 30x21, but image b.png is 30x20"):
        load_dataset(f"folder:{root}")[1]
    _img(root / "masks" / "b.png", value=7)
    with pytest.raises(UsdenoiseError, match="b.png: label 7 but only 2 classes"):
        load_dataset(f"folder:{root}")[1]
    (root / "subjects.csv").write_text("id,subject\na,A\n")
    with pytest.raises(UsdenoiseError, match="subjects.csv: no subject for image 'b'"):
        load_dataset(f"folder:{root}")
    (root / "subjects.csv").write_text("name,group\n")
    with pytest.raises(UsdenoiseError, match="header line 'id,subject'"):
        load_dataset(f"folder:{root}")
    (root / "subjects.csv").unlink()
    _img(root / "sub" / "a.png")
    with pytest.raises(UsdenoiseError, match="same name 'a'"):
        load_dataset(f"folder:{root}")


def test_corrupt_image_names_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    ds = load_dataset(f"folder:{tmp_path}")
    with pytest.raises(UsdenoiseError, match="bad.png"):
        ds[0]
