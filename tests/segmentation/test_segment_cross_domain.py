"""Cross-domain evaluation: a head model (HC18/phantom classes) on PSFHS-layout data, whose
fetal head it is measured against and whose pubic symphysis counts as background.

Dice is checked against a hand computation from the written masks and the remapped labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli as _cli
from psfhs_fixtures import write_psfhs_case
from typer.testing import CliRunner

from usdenoise.checkpoint import save_model
from usdenoise.cli.app import app, main
from usdenoise.io.images import read_mask
from usdenoise.models.segmenters import build_segmenter
from usdenoise.segmentation.evaluate import SegmentEvaluation, evaluate_segmenter

pytest.importorskip("monai")
sitk = pytest.importorskip("SimpleITK")

TINY = ["--size", "32", "--epochs", "1", "--limit", "1", "--batch-size", "4", "--device", "cpu",
        "--no-progress", "--arch", "segnet", "--arch-param", "channels=4,8,8"]
NOTE = ("psfhs: class 'pubic_symphysis' has no counterpart in the model (background, head): "
        "counted as background")



def _psfhs(root: Path, n: int, *, spacing=(0.2, 0.2)) -> Path:
    for i in range(n):
        write_psfhs_case(root, f"{i + 1:05d}", spacing=spacing,
                         label=None if i % 2 == 0 else _shifted(i))
    return root


def _shifted(i: int) -> np.ndarray:
    from psfhs_fixtures import psfhs_labels

    return psfhs_labels(shift=-(i % 5))


def _constant_model(folder: Path, names: tuple[str, ...], cls: int) -> Path:
    """A segnet that predicts class `cls` everywhere (classifier bias only)."""
    net = build_segmenter("segnet", "fast", num_classes=len(names), channels=[4, 4, 4])
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.fill_(-10.0)
        net.classifier.bias[cls] = 10.0
    save_model(folder / "model_best", net, arch="segnet", arch_config=net.config,
               kind="segmenter", meta={"class_names": list(names), "image_size": 32})
    return folder


@pytest.fixture(scope="module")
def psfhs_root(tmp_path_factory) -> Path:
    return _psfhs(tmp_path_factory.mktemp("psfhs"), 8)


@pytest.fixture(scope="module")
def head_run(tmp_path_factory) -> Path:
    """A tiny 2-class (background, head) segmenter trained on phantoms."""
    run = tmp_path_factory.mktemp("run") / "run"
    try:
        main(["segment", "train", "phantom:12", "--out", str(run), *TINY])
    except SystemExit as exc:
        assert not exc.code, exc.code
    return run


def _hand_dice(out: Path, root: Path, *, model_head: int = 1) -> list[float]:
    """Per-image head Dice from masks/<id>.png and label_mha/<id>.mha (fetal head = 2)."""
    values = []
    for png in sorted((out / "masks").glob("*.png")):
        pred = read_mask(png).numpy() == model_head
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "label_mha" / f"{png.stem}.mha")))
        truth = label == 2  # the remapped truth: fetal head -> head, symphysis -> background
        total = pred.sum() + truth.sum()
        values.append(2 * (pred & truth).sum() / total if total else math.nan)
    return values


def _nanmean(values: list[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else None


def _assert_dice(record: dict, hand: list[float]) -> None:
    expected = _nanmean(hand)
    for key in ("dice_head", "dice"):
        if expected is None:
            assert record[key] is None
        else:
            assert record[key] == pytest.approx(expected, abs=1e-9), key


def test_trained_head_model_on_psfhs(psfhs_root: Path, head_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "e"
    settings = SegmentEvaluation(data=f"psfhs:{psfhs_root}", model=str(head_run), split="all",
                                 device="cpu")
    with pytest.warns(UserWarning, match="pubic_symphysis"):
        records, notes = evaluate_segmenter(settings, out)
    record = records[0]
    assert NOTE in notes and NOTE in (out / "results.md").read_text()
    assert record["class_map"] == {"fetal_head": "head"}
    assert record["classes_dropped"] == ["pubic_symphysis"]
    assert record["n_images"] == 8 and "dice_pubic_symphysis" not in record
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 8 and read_mask(masks[0]).shape == (48, 64)
    _assert_dice(record, _hand_dice(out, psfhs_root))
    assert record["hd95_unit"] == "mm"  # PSFHS headers carry the pixel size
    assert record["n_hc"] + record["n_missing_hc"] == 8


def test_all_head_model_on_psfhs_gives_the_hand_computed_dice(psfhs_root: Path,
                                                             tmp_path: Path) -> None:
    model = _constant_model(tmp_path / "allhead", ("background", "head"), 1)
    out = tmp_path / "e"
    with pytest.warns(UserWarning):
        records, _ = evaluate_segmenter(SegmentEvaluation(
            data=f"psfhs:{psfhs_root}", model=str(model), split="all", device="cpu"), out)
    hand = _hand_dice(out, psfhs_root)
    assert all(0.1 < v < 0.5 for v in hand)  # every pixel predicted head: a known, low Dice
    _assert_dice(records[0], hand)
    # the whole image as the head: HC is measured (the image's ellipse), not missing
    assert records[0]["n_hc"] == 8 and records[0]["n_missing_hc"] == 0


def test_cli_evaluate_on_psfhs(psfhs_root: Path, head_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    with pytest.warns(UserWarning, match="no counterpart in the model"):
        result = CliRunner().invoke(app, ["segment", "evaluate", f"psfhs:{psfhs_root}",
                                          "--segmenter", str(head_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "results.json").read_text())[0]
    assert record["split"] == "test" and record["n_images"] >= 1
    assert NOTE in (out / "results.md").read_text()
    _assert_dice(record, _hand_dice(out, psfhs_root))


def test_cli_classes_restricts_a_psfhs_model_to_the_head(psfhs_root: Path, tmp_path: Path,
                                                         capsys) -> None:
    names = ("background", "pubic_symphysis", "fetal_head")
    model = _constant_model(tmp_path / "ps", names, 2)
    code, _, err = _cli(capsys, "segment", "evaluate", f"psfhs:{psfhs_root}", "--segmenter", model,
                        "--out", tmp_path / "all", "--split", "all")
    assert code == 0, err
    full = json.loads((tmp_path / "all" / "results.json").read_text())[0]
    assert full["dice_pubic_symphysis"] == 0.0 and "class_map" not in full  # names agree
    with pytest.warns(UserWarning, match="not among --classes fetal_head"):
        code, _, err = _cli(capsys, "segment", "evaluate", f"psfhs:{psfhs_root}", "--segmenter",
                            model, "--out", tmp_path / "head", "--split", "all",
                            "--classes", "head")
    assert code == 0, err
    record = json.loads((tmp_path / "head" / "results.json").read_text())[0]
    assert "dice_pubic_symphysis" not in record
    hand = _nanmean(_hand_dice(tmp_path / "head", psfhs_root, model_head=2))
    assert record["dice_fetal_head"] == pytest.approx(hand, abs=1e-9)
    assert record["dice"] == pytest.approx(hand, abs=1e-9)
    assert full["dice_fetal_head"] == pytest.approx(hand, abs=1e-9)  # same head, same Dice
    code, _, err = _cli(capsys, "segment", "evaluate", f"psfhs:{psfhs_root}", "--segmenter", model,
                        "--out", tmp_path / "x", "--split", "all", "--classes", "brain")
    assert code == 2 and "--classes brain: not a class of the model" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_model_with_no_matching_class_is_refused(psfhs_root: Path, tmp_path: Path,
                                                 capsys) -> None:
    model = _constant_model(tmp_path / "brain", ("background", "brain"), 1)
    code, _, err = _cli(capsys, "segment", "evaluate", f"psfhs:{psfhs_root}", "--segmenter", model,
                        "--out", tmp_path / "e", "--split", "all")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"psfhs:{psfhs_root}: masks have 3 classes (background, pubic_symphysis, " \
           "fetal_head)" in err
    assert "predicts 2 (background, brain)" in err and "matches" in err
    assert not (tmp_path / "e").exists()


def test_psfhs_without_pixel_size_skips_hc_with_a_warning(head_run: Path, tmp_path: Path) -> None:
    root = _psfhs(tmp_path / "nospacing", 3, spacing=None)
    from usdenoise.data import load_dataset

    assert load_dataset(f"psfhs:{root}")[0]["spacing_mm"] is None
    model = _constant_model(tmp_path / "allhead", ("background", "head"), 1)
    out = tmp_path / "e"
    with pytest.warns(UserWarning, match="no pixel size: head circumference skipped"):
        records, notes = evaluate_segmenter(SegmentEvaluation(
            data=f"psfhs:{root}", model=str(model), split="all", device="cpu"), out)
    record = records[0]
    assert record["n_hc_skipped"] == 3 and record["hc_abs_error_mm"] is None
    assert record["hd95_unit"] == "px" and NOTE in notes
    _assert_dice(record, _hand_dice(out, root))
