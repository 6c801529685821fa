"""`usdenoise study DATA --test DATA2`: every model trained (and α tuned) on DATA (32 px
phantoms: background, head), the test rows measured on all of DATA2 (a PSFHS-layout fixture:
its fetal head against the models' head, the pubic symphysis as background); study.json and
study.md name the test data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from psfhs_fixtures import write_psfhs_root

from usdenoise.study.run import StudySettings, load_study_data, load_test_data

pytest.importorskip("monai")
pytest.importorskip("SimpleITK")

TINY = ["--size", "32", "--segmenter-epochs", "1", "--denoiser-epochs", "1",
        "--max-images", "16,8,5", "--batch-size", "8", "--resamples", "50", "--device", "cpu",
        "--examples", "1", "--segmenter-param", "channels=4,8"]


@pytest.fixture(scope="module")
def psfhs_root(tmp_path_factory) -> Path:
    return write_psfhs_root(tmp_path_factory.mktemp("psfhs"))


def test_test_data_is_all_of_it_up_to_the_test_count(psfhs_root: Path) -> None:
    settings = StudySettings(data="phantom:40", test=f"psfhs:{psfhs_root}", size=32,
                             max_images=(16, 8, 5), batch_size=8)
    data = load_study_data(settings)
    test = load_test_data(settings, data)
    assert test.splits == {"test": [0, 1, 2, 3, 4]} and test.spec == settings.test
    assert test.measured_names == ("background", "head")
    mask = test.sample(0, native=True)["mask"]
    assert set(mask.unique().tolist()) == {0, 1, 2}  # background, pubic symphysis, fetal head
    assert set(test.truth(mask).unique().tolist()) == {0, 1}
    assert int((test.truth(mask) == 1).sum()) == int((mask == 2).sum())
    no_test = StudySettings(data="phantom:40", size=32, max_images=(16, 8, 5), batch_size=8)
    assert load_test_data(no_test, data) is data


def test_study_with_test_data_end_to_end(psfhs_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    test = f"psfhs:{psfhs_root}"
    code, _, err = run_cli(capsys, "study", "phantom:40", "--test", test, "--out", out,
                           "--arms", "none,median", "--inputs", "none", "--tune-strength",
                           "--strengths", "0,1", *TINY)
    assert code == 0, err
    doc = json.loads((out / "study.json").read_text())
    assert doc["settings"]["test"] == test and doc["test_data"] == test
    assert doc["settings"]["data"] == "phantom:40" and doc["splits"]["test"] == 5
    assert doc["class_map"]["class_map"] == {"fetal_head": "head"}
    keys = {(r["protocol"], r["arm"]) for r in doc["records"]}
    assert keys == {("A", "none"), ("A", "median"), ("A", "median@tuned"), ("B", "none"),
                    ("B", "median")}
    assert all(r["n_images"] == 5 and 0.0 <= r["dice"] <= 1.0 for r in doc["records"])
    with open(out / "per_image.csv", newline="") as handle:
        ids = {row["id"] for row in csv.DictReader(handle)}
    assert ids == {f"{i:05d}" for i in range(1, 6)}  # the PSFHS images, not phantoms
    md = (out / "study.md").read_text()
    assert f"test rows: 5 images of {test}, every model trained (and α chosen) on phantom:40" \
        in md
    assert "class 'pubic_symphysis' has no counterpart" in md
    # the validation (α) and training images stayed the phantoms'
    assert (out / "runs" / "segmenter-B-none-median" / "model_best.safetensors").is_file()


def test_test_data_without_masks_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    import torch

    from usdenoise.io import write_image

    scans = tmp_path / "scans"
    for i in range(3):
        write_image(scans / f"s{i}.png", torch.rand(1, 32, 32))
    code, _, err = run_cli(capsys, "study", "phantom:40", "--test", f"folder:{scans}",
                           "--out", tmp_path / "s", *TINY)
    assert code == 2 and err.count("\n") == 1
    assert "--test folder:" in err and "no masks" in err and not (tmp_path / "s").exists()
