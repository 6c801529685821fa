"""PSFHS: image_mha/ + label_mha/ pairs written with SimpleITK (3 equal planes, labels 0-2)."""

from __future__ import annotations

import numpy as np
import pytest
from psfhs_fixtures import psfhs_labels as _labels
from psfhs_fixtures import write_psfhs_case as _write

from usdenoise import io as usio
from usdenoise.core.errors import UsdenoiseError
from usdenoise.data import load_dataset

sitk = pytest.importorskip("SimpleITK")
needs_mha_reader = pytest.mark.skipif(
    ".mha" not in usio.IMAGE_SUFFIXES, reason="usdenoise.io cannot read MetaImage (.mha) yet"
)


@needs_mha_reader
def test_pairs_classes_and_gray(tmp_path):
    gray = _write(tmp_path, "00001")
    _write(tmp_path, "00002")
    ds = load_dataset(f"psfhs:{tmp_path}")
    assert ds.ids == ["00001", "00002"] and ds.subjects == ds.ids
    assert ds.class_names == ("background", "pubic_symphysis", "fetal_head")
    s = ds[0]
    assert s["image"].shape == (1, 48, 64)
    assert np.allclose(s["image"][0].numpy(), gray / 255.0, atol=1e-6)
    assert np.array_equal(s["mask"].numpy(), _labels())
    resized = load_dataset(f"psfhs:{tmp_path}", size=24)[0]
    assert resized["mask"].shape == (24, 24)
    assert set(resized["mask"].unique().tolist()) <= {0, 1, 2}


@needs_mha_reader
def test_bad_input(tmp_path):
    _write(tmp_path, "00001", label=np.full((48, 64), 5, np.uint8))
    with pytest.raises(UsdenoiseError, match="00001.mha: label 5 is not a PSFHS class"):
        load_dataset(f"psfhs:{tmp_path}")[0]
    _write(tmp_path, "00001", label=np.zeros((40, 64), np.uint8))
    with pytest.raises(UsdenoiseError, match="00001.mha: mask is 64x40, but image"):
        load_dataset(f"psfhs:{tmp_path}")[0]
    (tmp_path / "image_mha" / "00003.mha").write_bytes(
        (tmp_path / "image_mha" / "00001.mha").read_bytes())
    with pytest.raises(UsdenoiseError, match="00003.mha: no label"):
        load_dataset(f"psfhs:{tmp_path}")


def test_missing_folders(tmp_path):
    with pytest.raises(UsdenoiseError, match="image_mha: folder not found"):
        load_dataset(f"psfhs:{tmp_path}")
    (tmp_path / "image_mha").mkdir()
    (tmp_path / "label_mha").mkdir()
    with pytest.raises(UsdenoiseError, match="no .mha/.mhd images"):
        load_dataset(f"psfhs:{tmp_path}")
