"""`usdenoise study`: the summaries against `usdenoise.metrics.stats`, the targets' arithmetic, the
strength search, a whole tiny study end to end (files, pairing, reuse of trained runs) and
its bad inputs. Everything runs on 32 x 32 phantoms with one-epoch models."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli as _cli
from torch import nn

from usdenoise.cli.app import main
from usdenoise.denoise.registry import make_denoiser
from usdenoise.metrics.stats import bootstrap_ci, paired_comparison
from usdenoise.study.arms import select_arms
from usdenoise.study.report import summarise, targets
from usdenoise.study.run import StudySettings, blend, load_study_data, tune_strength

pytest.importorskip("monai")

TINY = ["--size", "32", "--segmenter-epochs", "1", "--denoiser-epochs", "1",
        "--max-images", "16,8,8", "--batch-size", "8", "--resamples", "200", "--device", "cpu",
        "--examples", "1", "--segmenter-param", "channels=4,8", "--denoiser-param",
        "channels=4,4,4,4"]



# --- summaries and targets ---------------------------------------------------------------------


def _rows(arm: str, dice: list[float], protocol: str = "A", noise: str = "none"):
    subjects = ["s1", "s1", "s2", "s3", "s4", "s5", "s6", "s7"]
    return [{"protocol": protocol, "input": noise, "arm": arm, "strength": 1.0,
             "id": f"img{i}", "subject": subjects[i], "dice": d, "hd95": None,
             "hc_abs_error_mm": 2.0 + d, "area_bias": d - 0.9, "psnr": 30.0 + d}
            for i, d in enumerate(dice)]


def test_summary_matches_the_stats_module_and_pairs_by_image() -> None:
    base = [0.90, 0.92, 0.80, 0.85, 0.88, 0.91, 0.86, 0.83]
    arm = [0.91, 0.90, 0.84, 0.86, 0.90, 0.93, 0.85, 0.88]
    # the arm's rows come in another order: pairing must go by image id, not position
    rows = _rows("none", base) + list(reversed(_rows("median", arm)))
    records = {r["arm"]: r for r in summarise(rows, seed=3, resamples=500)}
    subjects = ["s1", "s1", "s2", "s3", "s4", "s5", "s6", "s7"]
    expected = bootstrap_ci(base, subjects, seed=3, resamples=500)
    assert records["none"]["dice"] == pytest.approx(expected.mean, abs=1e-12)
    assert records["none"]["dice_low"] == pytest.approx(expected.low, abs=1e-12)
    assert records["none"]["n_subjects"] == 7 and records["none"]["hd95"] is None
    paired = paired_comparison(arm, base, subjects, seed=3, resamples=500)
    assert records["median"]["dice_diff"] == pytest.approx(paired.mean_difference, abs=1e-12)
    assert records["median"]["dice_p"] == pytest.approx(paired.p_value, abs=1e-12)
    assert records["median"]["dice_diff_high"] == pytest.approx(paired.high, abs=1e-12)
    assert "dice_diff" not in records["none"]


def test_targets_arithmetic() -> None:
    records = [
        {"protocol": "A", "input": "none", "arm": "none", "strength": 1.0, "dice": 0.95,
         "hc_abs_error_mm": 3.0},
        {"protocol": "A", "input": "rayleigh:0.5", "arm": "none", "strength": 1.0, "dice": 0.75},
        {"protocol": "A", "input": "rayleigh:0.5", "arm": "bm3d", "strength": 1.0, "dice": 0.90},
        {"protocol": "A", "input": "rayleigh:0.5", "arm": "median", "strength": 1.0,
         "dice": 0.80},
        {"protocol": "A", "input": "none", "arm": "bm3d@tuned", "strength": 0.25,
         "dice": 0.947},
    ]
    t = targets(records)
    assert t["original_images"]["met"] is False  # 0.95 < 0.97
    recovery = t["recovery_at_rayleigh_0.5"]
    assert recovery["best_arm"] == "bm3d"
    assert recovery["fraction_recovered"] == pytest.approx(0.15 / 0.20)
    assert recovery["met"] is False
    tuned = t["tuned_on_original_images"]
    assert tuned["best"]["dice_loss"] == pytest.approx(0.003) and tuned["met"] is True


# --- strength ------------------------------------------------------------------------------


def test_blend_is_what_the_strength_parameter_computes() -> None:
    x = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    full = make_denoiser("median").denoise(x)
    expected = make_denoiser("median", strength=0.3).denoise(x)
    torch.testing.assert_close(blend(full[0], x[0], 0.3)[None], expected, atol=1e-6, rtol=0)


class _Threshold(nn.Module):
    """Segments by brightness: logits favour class 1 where the image is above 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x, x - 0.5], dim=1) + 0 * self.dummy


def _two_level_data():
    data = load_study_data(StudySettings(data="phantom:20", size=32, batch_size=4).resolved())
    masks = {i: data.dataset[i]["mask"].float()[None] for i in data.splits["val"]}
    return data, masks


def test_strength_search_picks_the_alpha_with_the_best_dice() -> None:
    data, masks = _two_level_data()
    # the "denoised" image is the mask itself; the input is its inverse: Dice rises with α
    good = {i: 0.1 + 0.8 * m for i, m in masks.items()}
    bad = {i: 0.9 - 0.8 * m for i, m in masks.items()}
    alpha, curve = tune_strength(_Threshold(), data, bad, good, good, [0.0, 0.25, 0.75, 1.0])
    assert alpha == 1.0
    dice = [c["val_dice"] for c in curve]
    assert dice[-1] > 0.99 and dice[0] < 0.01
    # swapped roles: denoising destroys the head, so the search keeps the input (α = 0)
    alpha, _ = tune_strength(_Threshold(), data, good, bad, good, [0.0, 0.5, 1.0])
    assert alpha == 0.0


# --- the whole study on a tiny phantom --------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "s"
    code = 1
    try:
        main(["study", "phantom:40", "--out", str(out), "--arms", "none,median,diconvae-l1msssim",
              "--inputs", "none,rayleigh:0.5", "--tune-strength", "--strengths", "0,0.5,1",
              *TINY])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0
    return out


def test_study_writes_tables_figures_and_runs(tiny_study: Path) -> None:
    doc = json.loads((tiny_study / "study.json").read_text())
    keys = {(r["protocol"], r["input"], r["arm"]) for r in doc["records"]}
    for protocol in ("A", "B"):
        for noise in ("none", "rayleigh:0.5"):
            for arm in ("none", "median", "diconvae-l1msssim"):
                assert (protocol, noise, arm) in keys
    assert ("A", "rayleigh:0.5", "median@tuned") in keys
    assert ("B", "none", "median@tuned") not in keys  # tuned arms: protocol A only
    n_test = doc["splits"]["test"]
    assert 0 < n_test <= 8
    for r in doc["records"]:
        assert r["n_images"] == n_test
        assert 0.0 <= r["dice"] <= 1.0
        if r["arm"] != "none":
            assert "dice_p" in r and "dice_diff" in r
    chosen = {(c["input"], c["arm"]): c["alpha"] for c in doc["strengths_chosen"]}
    assert set(chosen.values()) <= {0.0, 0.5, 1.0} and len(chosen) == 4
    assert len(doc["curves"]) == 4 * 3
    assert set(doc["targets"]) >= {"original_images", "recovery_at_rayleigh_0.5"}
    with open(tiny_study / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n_test * (2 * 3 + 2 * 2 + 2 * 3)  # A, A tuned, B
    md = (tiny_study / "study.md").read_text()
    assert "Protocol A" in md and "Protocol B" in md and "Strength chosen" in md
    for name in ("dice.png", "strength_none.png", "strength_rayleigh-0.5.png"):
        assert (tiny_study / "figures" / name).stat().st_size > 1000
    assert len(list((tiny_study / "figures").glob("example_*.png"))) == 1
    assert (tiny_study / "runs" / "segmenter-A" / "model_best.safetensors").is_file()
    assert (tiny_study / "runs" / "denoiser-diconvae-l1msssim" / "model_best.json").is_file()
    # protocol B on original images without denoising is protocol A's segmenter: not retrained
    assert not (tiny_study / "runs" / "segmenter-B-none-none").exists()
    assert not (tiny_study / ".partial").exists()


def test_psnr_is_measured_against_the_original_image(tiny_study: Path) -> None:
    doc = json.loads((tiny_study / "study.json").read_text())
    psnr = {(r["protocol"], r["input"], r["arm"]): r["psnr"] for r in doc["records"]}
    assert psnr["A", "none", "none"] is None  # unchanged image: no PSNR
    assert psnr["A", "rayleigh:0.5", "none"] < 30
    # protocol B measures the same processed images: the same PSNR
    assert psnr["B", "rayleigh:0.5", "median"] == psnr["A", "rayleigh:0.5", "median"]


def test_rerun_reuses_the_trained_runs_and_gives_the_same_numbers(tiny_study: Path,
                                                                    capsys) -> None:
    before = json.loads((tiny_study / "study.json").read_text())
    code, _, err = _cli(capsys, "study", "phantom:40", "--out", tiny_study, "--arms",
                        "none,median,diconvae-l1msssim", "--inputs", "none,rayleigh:0.5",
                        "--tune-strength", "--strengths", "0,0.5,1", *TINY)
    assert code == 2 and "study.json already exists" in err
    code, _, _ = _cli(capsys, "study", "phantom:40", "--out", tiny_study, "--arms",
                      "none,median,diconvae-l1msssim", "--inputs", "none,rayleigh:0.5",
                      "--tune-strength", "--strengths", "0,0.5,1", "--overwrite", *TINY)
    assert code == 0
    after = json.loads((tiny_study / "study.json").read_text())
    for a, b in zip(before["records"], after["records"], strict=True):
        assert a["dice"] == b["dice"] or (math.isnan(a["dice"]) and math.isnan(b["dice"]))


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--arms", "none,fancy"], "unknown arm 'fancy'"),
    (["--arms", "diconvae-l1perceptual"], "needs local VGG16 weights"),
    (["--protocols", "B", "--tune-strength"], "keep protocol A"),
    (["--protocols", "C"], "choose A, B or A,B"),
    (["--strengths", "0,2"], "must lie in [0, 1]"),
    (["--max-images", "4,2"], "give train,val,test counts"),
    (["--inputs", "none,speckle:0.5"], "speckle"),
])
def test_bad_options_are_one_line_errors_without_output(tmp_path: Path, capsys, args,
                                                        message: str) -> None:
    out = tmp_path / "s"
    code, _, err = _cli(capsys, "study", "phantom:20", "--out", out, *TINY, *args)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (out / "study.json").exists()


def test_data_without_masks_is_refused(tmp_path: Path, capsys) -> None:
    from usdenoise.io import write_image

    folder = tmp_path / "plain" / "images"
    folder.mkdir(parents=True)
    for i in range(4):
        write_image(folder / f"a{i}.png", torch.rand(1, 16, 16))
    code, _, err = _cli(capsys, "study", f"folder:{tmp_path / 'plain'}", "--out",
                        tmp_path / "s", *TINY)
    assert code == 2 and "no masks" in err


def test_reused_segmenter_of_another_size_is_refused(tiny_study: Path, tmp_path: Path,
                                                     capsys) -> None:
    code, _, err = _cli(capsys, "study", "phantom:40", "--out", tmp_path / "s", *TINY,
                        "--size", "48", "--segmenter", tiny_study / "runs" / "segmenter-A",
                        "--protocols", "A", "--arms", "none")
    assert code == 2 and "trained at 32 px" in err


def test_bm3d_arm_is_dropped_with_a_note_when_the_package_is_missing(monkeypatch) -> None:
    import usdenoise.study.arms as study_arms

    monkeypatch.setattr(study_arms, "bm3d_available", lambda: False)
    arms, notes = select_arms(["bm3d", "median"], vgg_weights=None)
    assert [a.name for a in arms] == ["none", "median"]
    assert any("bm3d left out" in n for n in notes)
    arms, notes = select_arms(None, vgg_weights=None)
    assert "diconvae-taskperceptual" in [a.name for a in arms]
    assert any("stands in" in n for n in notes)


def test_classic_arm_in_worker_processes_matches_one_process() -> None:
    from usdenoise.study.run import run_arm

    g = torch.Generator().manual_seed(4)
    images = {i: torch.rand(1, 20, 20, generator=g) for i in range(7)}
    denoiser = make_denoiser("median", window=3)
    one = run_arm(denoiser, images, batch=2, workers=1)
    two = run_arm(denoiser, images, batch=2, workers=2, method=("median", {"window": 3}))
    assert list(two) == list(images)
    for i in images:
        torch.testing.assert_close(one[i], two[i], atol=0, rtol=0)


def test_task_arms_train_against_the_protocol_a_segmenter(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    code, _, err = _cli(capsys, "study", "phantom:40", "--out", out, *TINY, "--protocols", "A",
                        "--inputs", "rayleigh:0.5", "--arms",
                        "none,diconvae-task,diconvae-taskperceptual")
    assert code == 0, err
    segmenter = (out / "runs" / "segmenter-A" / "model_best.safetensors").resolve()
    for arm, loss in (("diconvae-task", "l1+msssim+0.1*task"),
                      ("diconvae-taskperceptual", "l1+taskperceptual")):
        config = json.loads((out / "runs" / f"denoiser-{arm}" / "model_best.json").read_text())
        config = config["meta"]["config"]
        assert config["loss"] == loss and config["segmenter"] == str(segmenter)
    doc = json.loads((out / "study.json").read_text())
    assert {r["arm"] for r in doc["records"]} == {"none", "diconvae-task",
                                                  "diconvae-taskperceptual"}


def test_vgg_weights_add_the_perceptual_arms(tmp_path: Path, capsys) -> None:
    from usdenoise.models.vgg import VGG16Features

    torch.manual_seed(0)
    weights = tmp_path / "vgg16.pth"
    torch.save(VGG16Features(("relu3_3",)).features.state_dict(), weights)  # random, local
    arms, notes = select_arms(None, vgg_weights=str(weights))
    names = [a.name for a in arms]
    assert "diconvae-l2perceptual" in names and "diconvae-l1perceptual" in names
    assert "diconvae-taskperceptual" not in names and not any("stands in" in n for n in notes)
    out = tmp_path / "s"
    code, _, err = _cli(capsys, "study", "phantom:40", "--out", out, *TINY, "--protocols", "A",
                        "--inputs", "rayleigh:0.5", "--arms", "none,diconvae-l1perceptual",
                        "--vgg-weights", weights)
    assert code == 0, err
    config = json.loads((out / "runs" / "denoiser-diconvae-l1perceptual" / "model_best.json")
                        .read_text())["meta"]["config"]
    assert config["loss"] == "l1+0.1*perceptual" and config["vgg_weights"] == str(weights)
