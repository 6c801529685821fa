"""Segmentation: metrics against hand-computed cases, HC of a drawn ellipse, the training
task inside fit(), `segment train` + `segment evaluate` end to end, and every bad input.

Everything runs on 32 x 32 phantoms with a 3-stage, 4-8 channel SegNet and 1-2 batches.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cli_helpers import run_cli as _cli

from usdenoise.checkpoint import save_model
from usdenoise.core.errors import UsdenoiseError
from usdenoise.io.images import write_image, write_mask
from usdenoise.metrics.geometry import ellipse_perimeter, head_circumference
from usdenoise.metrics.segmentation import (
    area_bias_per_class,
    dice_per_class,
    hd95_per_class,
    iou_per_class,
)
from usdenoise.models.segmenters import build_segmenter
from usdenoise.segmentation.evaluate import InputPipeline, head_classes, image_metrics
from usdenoise.segmentation.pipeline import PreparedDataset
from usdenoise.training.config import TrainConfig

pytest.importorskip("monai")

TINY = ["--size", "32", "--epochs", "1", "--limit", "1", "--batch-size", "4", "--device", "cpu",
        "--no-progress", "--arch", "segnet", "--arch-param", "channels=4,8,8"]



# --- metrics against hand-computed cases -----------------------------------------------------


def test_dice_iou_area_bias_hand_computed() -> None:
    target = np.zeros((4, 4), np.int64)
    target[0:2, 0:2] = 1  # 4 pixels of class 1
    target[3, 3] = 2  # 1 pixel of class 2
    pred = np.zeros((4, 4), np.int64)
    pred[0:2, 0:3] = 1  # 6 pixels of class 1, 4 of them right
    # class 0: true 11, predicted 10, overlap 9 (pixel (3, 3) is class 2)
    dice = dice_per_class(pred, target, 4)
    assert dice[0] == pytest.approx(2 * 9 / 21)
    assert dice[1] == pytest.approx(2 * 4 / 10)
    assert dice[2] == 0.0  # missed entirely
    assert math.isnan(dice[3])  # absent from both: undefined
    iou = iou_per_class(pred, target, 4)
    assert iou[1] == pytest.approx(4 / 6) and iou[2] == 0.0 and math.isnan(iou[3])
    bias = area_bias_per_class(pred, target, 4)
    assert bias[1] == pytest.approx(6 / 4 - 1) and bias[1] > 0  # drawn too large
    assert bias[2] == pytest.approx(-1.0)
    small = np.zeros((4, 4), np.int64)
    small[0, 0] = 1
    assert area_bias_per_class(small, target, 3)[1] == pytest.approx(-0.75)  # too small: < 0


def test_hd95_of_a_shifted_square_in_pixels_and_mm() -> None:
    target = np.zeros((40, 40), np.int64)
    target[10:30, 10:30] = 1
    pred = np.roll(target, 3, axis=1)  # 3 columns to the right
    assert hd95_per_class(pred, target, 2)[1] == pytest.approx(3.0)
    # rows 1 mm, columns 0.5 mm: the shift is 1.5 mm
    assert hd95_per_class(pred, target, 2, spacing_mm=(1.0, 0.5))[1] == pytest.approx(1.5)
    assert hd95_per_class(target, target, 2)[1] == 0.0
    assert math.isnan(hd95_per_class(np.zeros_like(target), target, 2)[1])  # empty: undefined


def _drawn_ellipse(shape, centre, axes, angle) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    s = 16
    cv2.ellipse(mask, (round(centre[0] * s), round(centre[1] * s)),
                (round(axes[0] * s), round(axes[1] * s)), angle, 0, 360, 1, -1,
                lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.int64)


def _rasterised_ellipse(shape, centre, axes, angle) -> np.ndarray:
    """Pixels whose centres lie inside the ellipse (exact, unlike cv2.ellipse's polygon)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    t = math.radians(angle)
    p = (xs - centre[0]) * math.cos(t) + (ys - centre[1]) * math.sin(t)
    q = -(xs - centre[0]) * math.sin(t) + (ys - centre[1]) * math.cos(t)
    return ((p / axes[0]) ** 2 + (q / axes[1]) ** 2 <= 1).astype(np.int64)


@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_hc_of_a_drawn_ellipse_with_anisotropic_pixels(angle: float) -> None:
    from usdenoise.data.hc18 import head_circumference_mm

    a_px, b_px = 70.0, 45.0
    mask = _rasterised_ellipse((200, 240), (120.3, 99.6), (a_px, b_px), angle)
    dy, dx = 0.3, 0.2  # rows 0.3 mm, columns 0.2 mm
    # the ellipse in mm: S R diag(a, b) maps the unit circle; its semi-axes are the
    # singular values of that matrix
    t = math.radians(angle)
    rotation = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    axes_mm = np.linalg.svd(np.diag([dx, dy]) @ rotation @ np.diag([a_px, b_px]),
                            compute_uv=False)
    expected = ellipse_perimeter(*axes_mm)
    measured = head_circumference(mask, (dy, dx))
    assert measured == pytest.approx(expected, rel=0.01)
    # fitting the pixel-edge border removes the half-pixel shrink of a fit to border-pixel
    # centres (measured: 0.03 % here against 0.8 %)
    assert abs(measured / expected - 1) < 0.002
    assert abs(measured / expected - 1) < abs(head_circumference_mm(mask, (dy, dx)) / expected - 1)
    # cv2.ellipse draws its outline pixels too (half a pixel larger): still within 1 %
    drawn = _drawn_ellipse((200, 240), (120.3, 99.6), (a_px, b_px), angle)
    assert head_circumference(drawn, (dy, dx)) == pytest.approx(expected, rel=0.01)


def test_hc_uses_the_largest_region_and_fills_its_holes() -> None:
    mask = _drawn_ellipse((120, 120), (60, 60), (40, 30), 0)
    reference = head_circumference(mask, 0.5)
    with_blob = mask.copy()
    with_blob[2:6, 2:6] = 1  # a stray blob elsewhere
    with_blob[55:65, 55:65] = 0  # a hole inside the head
    assert head_circumference(with_blob, 0.5) == pytest.approx(reference, rel=1e-6)
    assert head_circumference(np.zeros((20, 20), np.int64), 0.5) is None


def test_head_classes_by_name_or_all_foreground() -> None:
    assert head_classes(("background", "pubic_symphysis", "fetal_head")) == [2]
    assert head_classes(("background", "brain", "csp", "lv")) == [1, 2, 3]
    assert head_classes(("background", "head", "midline", "ventricles")) == [1]


def test_image_metrics_empty_prediction_and_missing_pixel_size() -> None:
    target = _drawn_ellipse((64, 64), (32, 32), (20, 14), 0)
    empty = np.zeros_like(target)
    names = ("background", "head")
    values = image_metrics(empty, target, class_names=names, spacing_mm=(0.5, 0.5), hc_mm=100.0)
    assert values["dice"] == 0.0 and values["area_bias"] == pytest.approx(-1.0)
    assert values["hc_abs_error_mm"] is None and values["hc_status"] == "no head predicted"
    assert values["missing_hd95"] and values["hd95_mm"] is None
    values = image_metrics(target, target, class_names=names, spacing_mm=None)
    assert values["dice"] == 1.0 and values["hd95_px"] == 0.0
    assert values["hc_abs_error_mm"] is None and values["hc_status"] == "no pixel size"
    # reference from the true mask when the data set has no HC value
    values = image_metrics(target, target, class_names=names, spacing_mm=(0.5, 0.5))
    assert values["hc_abs_error_mm"] == pytest.approx(0.0, abs=1e-9)


def test_input_pipeline_is_seeded_per_image_and_denoises_once(monkeypatch) -> None:
    from usdenoise.data import load_dataset

    pipeline = InputPipeline(noise="rayleigh:0.5", denoise="median", seed=3)
    image = torch.rand(1, 16, 16)
    assert torch.equal(pipeline(image, 7), pipeline(image, 7))
    assert not torch.equal(pipeline(image, 7), pipeline(image, 8))
    calls = []
    original = pipeline.denoiser.denoise
    monkeypatch.setattr(pipeline.denoiser, "denoise", lambda x: calls.append(1) or original(x))
    prepared = PreparedDataset(load_dataset("phantom:3", size=16), pipeline, ("background", "head"))
    prepared.prepare([0, 1, 2])
    for _ in range(2):
        for i in range(3):
            prepared[i]
    assert len(calls) == 3


# --- end to end ------------------------------------------------------------------------------


def test_segment_train_and_evaluate_on_phantoms(tmp_path: Path, capsys) -> None:
    run, out = tmp_path / "run", tmp_path / "eval"
    code, _, err = _cli(capsys, "segment", "train", "phantom:12", "--out", run, *TINY)
    assert code == 0, err
    for name in ("model_best.safetensors", "model_best.json", "metrics.csv", "splits.json"):
        assert (run / name).is_file(), name
    sidecar = json.loads((run / "model_best.json").read_text())
    assert sidecar["kind"] == "segmenter" and sidecar["arch"] == "segnet"
    assert sidecar["meta"]["class_names"] == ["background", "head"]
    assert "val_dice" in (run / "metrics.csv").read_text().splitlines()[0]
    code, stdout, err = _cli(capsys, "segment", "evaluate", "phantom:12", "--segmenter", run,
                             "--out", out, "--split", "all", "--limit", "3", "--examples", "2",
                             "--noise", "rayleigh:0.5", "--denoise", "median")
    assert code == 0, err
    assert "dice" in stdout
    for name in ("results.json", "results.csv", "results.md", "per_image.csv"):
        assert (out / name).is_file(), name
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 1
    record = records[0]
    for key in ("dice", "iou", "hd95", "area_bias", "hc_abs_error_mm", "n_missing_hc",
                "dice_head", "seconds_per_image"):
        assert key in record, key
    assert record["method"] == "median" and record["noise"] == "rayleigh"
    assert record["level"] == 0.5 and record["n_images"] == 3 and record["hd95_unit"] == "mm"
    assert 0.0 <= record["dice"] <= 1.0
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 3 and len(list((out / "overlays").glob("*.png"))) == 2
    from usdenoise.io import read_mask

    predicted = read_mask(masks[0])
    assert predicted.shape == (256, 256)  # back at the image's own size (phantom default)
    assert set(predicted.unique().tolist()) <= {0, 1}  # class labels only, never blends
    assert len((out / "per_image.csv").read_text().splitlines()) == 4
    code, _, err = _cli(capsys, "segment", "evaluate", "phantom:12", "--segmenter", run,
                        "--out", out, "--split", "all", "--limit", "1")
    assert code == 2 and "already exists" in err


def test_segment_train_with_denoiser_and_noise_records_the_inputs(tmp_path: Path,
                                                                   capsys) -> None:
    run = tmp_path / "run"
    code, _, err = _cli(capsys, "segment", "train", "phantom:12", "--out", run, *TINY,
                        "--denoise", "median", "--denoise-param", "window=3",
                        "--noise", "rayleigh:0.5")
    assert code == 0, err
    meta = json.loads((run / "model_best.json").read_text())["meta"]
    assert meta["inputs"] == {"noise": "rayleigh:0.5", "denoise": "median",
                              "denoise_params": {"window": "3"}}


def test_segment_train_resumes_with_the_runs_settings(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert _cli(capsys, "segment", "train", "phantom:12", "--out", run, *TINY)[0] == 0
    code, _, err = _cli(capsys, "segment", "train", "--resume", run, "--epochs", "2")
    assert code == 0, err
    lines = (run / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]


def test_segment_task_in_fit_is_deterministic(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from usdenoise.training.loop import fit

    config = dict(data="phantom:12", task="segment", arch="segnet", loss="dice+ce",
                  noise="none", image_size=32, crop=24, batch_size=4, epochs=1, limit=1,
                  model={"channels": [4, 4, 4]}, device="cpu", progress=False)
    a = fit(TrainConfig(**config, out=str(tmp_path / "a")))
    b = fit(TrainConfig(**config, out=str(tmp_path / "b")))
    wa, wb = load_file(str(a)), load_file(str(b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# --- bad input -------------------------------------------------------------------------------


def test_config_rejects_segment_settings_on_the_denoise_task() -> None:
    with pytest.raises(UsdenoiseError, match="settings of task 'segment'"):
        TrainConfig(num_classes=2)
    with pytest.raises(UsdenoiseError, match="num_classes must be at least 2"):
        TrainConfig(task="segment", num_classes=1)


def test_class_count_mismatch_in_train_and_evaluate(tmp_path: Path, capsys) -> None:
    code, _, err = _cli(capsys, "segment", "train", "phantom:12", "--out", tmp_path / "r",
                        *TINY, "--num-classes", "3")
    assert code == 2 and "masks have 2 classes (background, head)" in err
    assert "num_classes is 3" in err and len(err.strip().splitlines()) == 1
    net = build_segmenter("segnet", "fast", num_classes=3, channels=[4, 4, 4])
    save_model(tmp_path / "seg3" / "model_best", net, arch="segnet", arch_config=net.config,
               kind="segmenter", meta={"class_names": ["background", "a", "b"]})
    code, _, err = _cli(capsys, "segment", "evaluate", "phantom:12", "--segmenter",
                        tmp_path / "seg3", "--out", tmp_path / "e", "--split", "all")
    assert code == 2 and "masks have 2 classes" in err and "predicts 3" in err


def test_mask_with_a_class_the_model_lacks(tmp_path: Path) -> None:
    from usdenoise.segmentation.evaluate import check_sample

    sample = {"image": torch.zeros(1, 8, 8), "mask": torch.full((8, 8), 3), "id": "x",
              "source": "a/x.png"}
    with pytest.raises(UsdenoiseError, match=r"a/x.png: mask holds class 3, but the model "
                                             r"has 2 classes \(background, head\)"):
        check_sample(sample, ("background", "head"), what="segment train")


def _folder(root: Path, n: int, *, masks: bool) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(root / f"img{i}.png", torch.from_numpy(rng.random((1, 32, 32)).astype("f4")))
        if masks:
            mask = np.zeros((32, 32), np.int64)
            mask[8:24, 6:26] = 1
            write_mask(root / "masks" / f"img{i}.png", mask)
    return root


def test_images_without_masks_are_refused_by_segment_train(tmp_path: Path, capsys) -> None:
    data = _folder(tmp_path / "plain", 12, masks=False)
    code, _, err = _cli(capsys, "segment", "train", f"folder:{data}", "--out", tmp_path / "r",
                        *TINY)
    assert code == 2 and "image has no mask" in err and "img" in err
    assert len(err.strip().splitlines()) == 1


def test_denoiser_checkpoint_given_as_segmenter_and_back(tmp_path: Path, capsys) -> None:
    from usdenoise.models import build_network

    denoiser = build_network("dncnn", "fast")
    save_model(tmp_path / "den" / "model", denoiser, arch="dncnn", arch_config=denoiser.config,
               kind="denoiser")
    code, _, err = _cli(capsys, "segment", "evaluate", "phantom:12", "--segmenter",
                        tmp_path / "den", "--out", tmp_path / "e", "--split", "all")
    assert code == 2 and "checkpoint is a denoiser, not a segmenter" in err
    # the message names the option the path came from and the one a denoiser belongs to
    assert err.startswith(f"usdenoise: error: --segmenter {tmp_path / 'den'}: ")
    assert "a denoiser goes to --denoise-model" in err
    net = build_segmenter("segnet", "fast", channels=[4, 4, 4])
    save_model(tmp_path / "seg" / "model", net, arch="segnet", arch_config=net.config,
               kind="segmenter")
    code, _, err = _cli(capsys, "segment", "train", "phantom:12", "--out", tmp_path / "r",
                        *TINY, "--denoise-model", tmp_path / "seg")
    assert code == 2 and "is a segmenter, not a denoiser" in err


def test_segmenter_given_as_the_denoiser_of_segment_evaluate(tmp_path: Path, capsys) -> None:
    net = build_segmenter("segnet", "fast", channels=[4, 4, 4])
    save_model(tmp_path / "seg" / "model_best", net, arch="segnet", arch_config=net.config,
               kind="segmenter", meta={"class_names": ["background", "head"], "image_size": 32})
    code, _, err = _cli(capsys, "segment", "evaluate", "phantom:12", "--segmenter",
                        tmp_path / "seg", "--denoise-model", tmp_path / "seg", "--out",
                        tmp_path / "e", "--split", "all")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "model_best.safetensors: checkpoint is a segmenter, not a denoiser" in err
    assert not (tmp_path / "e").exists()  # refused before anything is written


def test_empty_prediction_and_missing_pixel_size_are_reported(tmp_path: Path, capsys) -> None:
    net = build_segmenter("segnet", "fast", channels=[4, 4, 4])
    with torch.no_grad():  # always background
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor([10.0, -10.0]))
    save_model(tmp_path / "bg" / "model_best", net, arch="segnet", arch_config=net.config,
               kind="segmenter", meta={"class_names": ["background", "head"],
                                       "image_size": 32})
    code, stdout, err = _cli(capsys, "segment", "evaluate", "phantom:12", "--segmenter",
                             tmp_path / "bg", "--out", tmp_path / "e", "--split", "all",
                             "--limit", "2")
    assert code == 0, err
    record = json.loads((tmp_path / "e" / "results.json").read_text())[0]
    assert record["n_missing_hc"] == 2 and record["hc_abs_error_mm"] is None
    assert record["dice"] == 0.0
    assert "no head predicted" in (tmp_path / "e" / "results.md").read_text()
    # PNG folder: no pixel size -> Dice only, HC skipped with a warning, HD95 in pixels
    data = _folder(tmp_path / "pngs", 3, masks=True)
    with pytest.warns(UserWarning, match="no pixel size"):
        code, _, err = _cli(capsys, "segment", "evaluate", f"folder:{data}", "--segmenter",
                            tmp_path / "bg", "--out", tmp_path / "f", "--split", "all")
    assert code == 0, err
    record = json.loads((tmp_path / "f" / "results.json").read_text())[0]
    assert record["n_hc_skipped"] == 3 and record["hc_abs_error_mm"] is None
    assert record["hd95_unit"] == "px" and record["dice"] == 0.0
