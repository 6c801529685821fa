"""`segment evaluate DATA --test DATA2`: a segmenter trained on DATA (phantoms: background,
head) measured on other data (a PSFHS-layout fixture: its fetal head), all of DATA2's
images unless --split says otherwise; the results name both data sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from psfhs_fixtures import write_psfhs_root

from usdenoise.segmentation.evaluate import SegmentEvaluation, evaluate_segmenter
from usdenoise.training.config import TrainConfig
from usdenoise.training.loop import fit

pytest.importorskip("monai")
pytest.importorskip("SimpleITK")


@pytest.fixture(scope="module")
def psfhs_root(tmp_path_factory) -> Path:
    return write_psfhs_root(tmp_path_factory.mktemp("psfhs"))


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory) -> Path:
    """A segnet trained two steps on 32 px phantoms (HC18's classes: background, head)."""
    run = tmp_path_factory.mktemp("seg") / "run"
    fit(TrainConfig(task="segment", data="phantom:12", arch="segnet", preset="fast",
                    model={"channels": [4, 8, 8]}, loss="dice+ce", noise="none", epochs=1,
                    limit=2, batch_size=4, image_size=32, crop=32, device="cpu",
                    progress=False, out=str(run)))
    return run


def test_test_data_is_evaluated_and_named(psfhs_root: Path, phantom_run: Path,
                                          tmp_path: Path) -> None:
    test = f"psfhs:{psfhs_root}"
    with pytest.warns(UserWarning, match="pubic_symphysis"):
        records, notes = evaluate_segmenter(SegmentEvaluation(
            data="phantom:12", model=str(phantom_run), test=test, device="cpu"),
            tmp_path / "test")
    record = records[0]
    assert record["data"] == test and record["train_data"] == "phantom:12"
    assert record["dataset"] == "psfhs" and record["split"] == "all"  # all of the test data
    assert record["n_images"] == 6 and record["class_map"] == {"fetal_head": "head"}
    assert sorted(p.stem for p in (tmp_path / "test" / "masks").glob("*.png")) == [
        f"{i:05d}" for i in range(1, 7)]
    md = (tmp_path / "test" / "results.md").read_text()
    assert f"data `{test}` (models trained on `phantom:12`), split all, 6 images" in md
    # the same figures as evaluating the PSFHS images directly
    with pytest.warns(UserWarning):
        direct, _ = evaluate_segmenter(SegmentEvaluation(
            data=test, model=str(phantom_run), split="all", device="cpu"), tmp_path / "direct")
    for key in ("dice", "iou", "area_bias", "hc_abs_error_mm", "n_missing_hc"):
        assert record[key] == direct[0][key], key
    assert "train_data" not in direct[0]


def test_cli_test_option_and_an_explicit_split(psfhs_root: Path, phantom_run: Path,
                                               tmp_path: Path, capsys) -> None:
    test = f"psfhs:{psfhs_root}"
    with pytest.warns(UserWarning, match="no counterpart in the model"):
        code, out, err = run_cli(capsys, "segment", "evaluate", "phantom:12", "--segmenter",
                                 phantom_run, "--test", test, "--split", "test", "--device",
                                 "cpu", "--out", tmp_path / "cli")
    assert code == 0, err
    record = json.loads((tmp_path / "cli" / "results.json").read_text())[0]
    assert record["data"] == test and record["train_data"] == "phantom:12"
    assert record["split"] == "test" and 1 <= record["n_images"] < 6  # PSFHS's own split
    assert f"on {test} ({record['n_images']} images)" in out
