"""Mask clean-up before measuring: specks removed, holes filled, ellipses refitted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.metrics.segmentation import dice_per_class
from usdenoise.segmentation.postprocess import fill_ellipse, postprocess_mask


@pytest.mark.parametrize("centre, axes, angle", [((100.3, 80.7), (40.2, 25.5), 30.0),
                                                 ((60.0, 60.0), (10.4, 7.2), 0.0),
                                                 ((150.5, 120.2), (90.0, 60.0), 75.0)])
def test_refitting_a_drawn_ellipse_gives_it_back(centre, axes, angle) -> None:
    truth = fill_ellipse((240, 300), centre, axes, angle)
    refit = postprocess_mask(torch.from_numpy(truth.astype(np.int64)), "ellipse").numpy()
    assert abs(int(refit.sum()) - int(truth.sum())) <= 0.02 * truth.sum()
    assert dice_per_class(refit, truth, 2)[1] > 0.99


def test_largest_removes_specks_and_fills_holes() -> None:
    mask = np.zeros((40, 40), np.int64)
    mask[5:25, 5:25] = 1
    mask[12:15, 12:15] = 0  # a hole
    mask[35:37, 35:37] = 1  # a speck
    out = postprocess_mask(mask, "largest").numpy()
    assert out[13, 13] == 1 and out[36, 36] == 0 and out.sum() == 400
    assert mask[13, 13] == 0  # the input is left alone


def test_ellipse_repairs_a_bitten_head_and_none_changes_nothing() -> None:
    truth = fill_ellipse((120, 160), (80.0, 60.0), (50.0, 35.0), 20.0).astype(np.int64)
    bitten = truth.copy()
    bitten[20:45, 60:100] = 0  # part of the skull missed
    bitten[100:104, 5:9] = 1  # a false speck
    before = dice_per_class(bitten, truth, 2)[1]
    after = dice_per_class(postprocess_mask(bitten, "ellipse").numpy(), truth, 2)[1]
    assert after > before + 0.02
    assert torch.equal(postprocess_mask(bitten, "none"), torch.from_numpy(bitten))


def test_other_classes_keep_their_largest_region_and_unknown_modes_fail() -> None:
    mask = np.zeros((30, 30), np.int64)
    mask[2:12, 2:12] = 2
    mask[20:22, 20:22] = 2
    mask[15:28, 3:10] = 1
    out = postprocess_mask(mask, "ellipse", head=(1,)).numpy()
    assert (out == 2).sum() == 100 and out[21, 21] == 0
    with pytest.raises(UsdenoiseError, match="--postprocess 'smooth'"):
        postprocess_mask(mask, "smooth")


def test_segment_evaluate_postprocess_option(tmp_path, capsys) -> None:
    pytest.importorskip("monai")
    import json

    from cli_helpers import run_cli

    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "segment", "train", "phantom:12", "--out", run, "--size", "32",
                           "--epochs", "1", "--batch-size", "4", "--device", "cpu",
                           "--no-progress", "--arch", "segnet", "--arch-param", "channels=4,8")
    assert code == 0, err
    for mode in ("none", "ellipse"):
        code, _, err = run_cli(capsys, "segment", "evaluate", "phantom:12", "--segmenter", run,
                               "--out", tmp_path / mode, "--postprocess", mode, "--split", "all")
        assert code == 0, err
        record = json.loads((tmp_path / mode / "results.json").read_text())[0]
        assert record["postprocess"] == mode
    code, _, err = run_cli(capsys, "segment", "evaluate", "phantom:12", "--segmenter", run,
                           "--out", tmp_path / "bad", "--postprocess", "smooth")
    assert code == 2 and "--postprocess 'smooth'" in err and not (tmp_path / "bad").exists()
