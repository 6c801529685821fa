"""report.html from every kind of run folder: evaluate/demo, train, study; escaping of every
user-controlled string; nothing external referenced; the `usdenoise report` command.

The folders are tiny (32 px phantoms, a 4-channel network, a one-epoch segmenter) and made
once per module.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

import usdenoise.cli.demo as demo
from usdenoise.cli.app import main
from usdenoise.cli.report import invoked_command
from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.benchmark import EvaluationSettings, MethodSpec, evaluate
from usdenoise.reporting.html import REPORT_NAME, build_report, report_kind
from usdenoise.reporting.html_images import choose_crop, level_folder
from usdenoise.reporting.html_page import best_values, esc, recorded_command
from usdenoise.reporting.html_plots import pareto_front
from usdenoise.training.config import TrainConfig
from usdenoise.training.loop import fit

SCRIPT = "<script>alert(1)</script>"
FILE_NAME = "<img src=x onerror=alert(1)>"  # a file name cannot hold the "/" of </script>
TINY_DEMO = demo.DemoPlan(phantoms=6, size=32, noises=("rayleigh:0.5",),
                          methods=("lee", "median"), train_epochs=1)
TINY_TRAIN = dict(data="phantom:12", image_size=32, crop=16, batch_size=4, epochs=2, limit=2,
                  model={"channels": [4, 4, 4, 4]}, device="cpu", progress=False,
                  loss="l1+msssim")
TINY_STUDY = ["--size", "32", "--segmenter-epochs", "1", "--denoiser-epochs", "1",
              "--max-images", "16,8,8", "--batch-size", "8", "--resamples", "100",
              "--device", "cpu", "--examples", "1", "--segmenter-param", "channels=4,8"]


def _run(argv: list[str]) -> None:
    try:
        main(argv)
    except SystemExit as exc:
        assert not exc.code, f"usdenoise {' '.join(argv)} exited with {exc.code}"


def make_evaluate_folder(out: Path, *, label: str = "median") -> Path:
    """A tiny benchmark (two levels, median and Lee) into `out`."""
    settings = EvaluationSettings(
        data="phantom:6", size=32, noises=["rayleigh:0.25", "rayleigh:0.5"], examples=1,
        methods=[MethodSpec("noisy", {}, "noisy"),
                               MethodSpec("median", {}, label),
                               MethodSpec("lee", {"window": 5}, "lee")])
    evaluate(settings, out)
    return out


def assert_self_contained(text: str) -> None:
    """Every src/href is a data: URI or a fragment; no script; no URL outside the data."""
    links = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', text, flags=re.IGNORECASE)
    assert all(link.startswith(("data:image/png;base64,", "#")) for link in links), links
    assert "url(" not in text.lower() and "@import" not in text.lower()
    assert "<script" not in text.lower()
    bare = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", text)
    for needle in ("http:", "https:", "//"):
        assert needle not in bare, needle


@pytest.fixture(scope="module")
def evaluate_dir(tmp_path_factory) -> Path:
    """A benchmark whose method label, data set and parameters are a script tag, with an
    example figure named like one: the report must show all of them as text."""
    out = make_evaluate_folder(tmp_path_factory.mktemp("evaluate") / "e", label=SCRIPT)
    records = json.loads((out / "results.json").read_text())
    for r in records:
        r["data"] = f"folder:/data/{SCRIPT}"
        r["dataset"] = SCRIPT
        r["params"] = {**r.get("params", {}), "note": SCRIPT}
    (out / "results.json").write_text(json.dumps(records))
    figure = next((out / "examples").glob("*.png"))
    shutil.copy(figure, out / "examples" / f"{FILE_NAME}.png")
    return out


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("train") / "run"
    fit(TrainConfig(**TINY_TRAIN, out=str(run)))
    return run


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    """Protocol A only (no protocol B segmenters): the study command also writes the report."""
    out = tmp_path_factory.mktemp("study") / "s"
    _run(["study", "phantom:40", "--out", str(out), "--arms", "none,median",
          "--inputs", "none,rayleigh:0.5", "--protocols", "A", "--tune-strength",
          "--strengths", "0,0.5,1", *TINY_STUDY])
    return out


# --- each kind of folder ---------------------------------------------------------------------


def test_demo_ends_by_printing_its_report(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo, "QUICK", TINY_DEMO)
    out = tmp_path / "d"
    _run(["demo", "--quick", "--out", str(out)])
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == f"report: {out / REPORT_NAME}"
    text = (out / REPORT_NAME).read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "usdenoise demo" in text  # the title and the recorded command
    assert recorded_command(text) == f"usdenoise demo --out {out} --quick"
    for method in ("noisy", "lee", "median"):
        assert f"<td>{method}</td>" in text
    assert "PSNR" in text and "Pareto" in text and "|output − clean|" in html.unescape(text)
    assert text.count("<img ") >= 6 + 2  # crops + difference maps, and the plots
    assert '<td class="best">' in text
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]


def test_evaluate_report_escapes_every_user_string(evaluate_dir: Path) -> None:
    path = build_report(evaluate_dir, command=f"usdenoise evaluate folder:{SCRIPT}")
    text = path.read_text(encoding="utf-8")
    assert SCRIPT not in text and "<script" not in text and FILE_NAME not in text
    escaped = html.escape(SCRIPT)
    assert escaped in text
    assert f"examples/{html.escape(FILE_NAME)}.png" in text  # the file name, as text
    assert f"folder:/data/{escaped}" in text  # the data path
    assert f"note={escaped}" in text  # a parameter
    assert f"<td>{escaped}</td>" in text  # the method name in the table
    assert_self_contained(text)


def test_evaluate_report_content(evaluate_dir: Path) -> None:
    text = build_report(evaluate_dir).read_text(encoding="utf-8")
    # the header, ↑/↓ per metric, both levels, the grid with PSNR per panel
    for needle in ("Run", "splits", "seed", "Summary", "psnr <span class=\"dir\" "
                   "title=\"higher is better\">↑</span>", "title=\"lower is better\">↓",
                   "rayleigh 0.25", "rayleigh 0.5", "Zoomed crop", "PSNR ", "dB"):
        assert needle in text, needle
    assert text.count('<tr class="baseline">') == 2
    # the command recorded by an earlier build is kept by a rebuild without one
    assert recorded_command(text) == f"usdenoise evaluate folder:{SCRIPT}"


def test_grid_notes_missing_tiles(tmp_path: Path) -> None:
    out = make_evaluate_folder(tmp_path / "e")
    for tile in (out / "examples").rglob("*_lee.png"):
        tile.unlink()
    text = html.unescape(build_report(out).read_text(encoding="utf-8"))
    assert "no tile for lee" in text
    shutil.rmtree(out / "examples")
    text = build_report(out).read_text(encoding="utf-8")
    assert "no example tiles" in text and "<td>lee</td>" in text


def test_train_report(train_dir: Path) -> None:
    assert report_kind(train_dir) == "train"
    text = build_report(train_dir).read_text(encoding="utf-8")
    assert_self_contained(text)
    for needle in ("usdenoise train: diconvae on phantom:12", "loss curves", "train loss",
                   "val psnr", "l1+msssim", "Settings", "best epoch"):
        assert needle in text, needle
    assert text.count("<img ") >= 2


def test_train_command_writes_its_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(["train", "phantom:12", "--out", str(run), "--epochs", "1", "--size", "32", "--crop",
          "16", "--batch-size", "4", "--limit", "1", "--arch-param", "channels=4,4,4,4",
          "--device", "cpu", "--no-progress"])
    text = (run / REPORT_NAME).read_text(encoding="utf-8")
    command = recorded_command(text)
    assert command.startswith("usdenoise train phantom:12 ") and f"--out {run}" in command


def test_study_report(study_dir: Path) -> None:
    assert report_kind(study_dir) == "study"
    text = (study_dir / REPORT_NAME).read_text(encoding="utf-8")  # written by the command
    assert "usdenoise study phantom:40" in html.unescape(text)
    text = build_report(study_dir).read_text(encoding="utf-8")
    assert_self_contained(text)
    for needle in ("Protocol A", "Δ Dice", "HC error", "Dice per test image",
                   "HC error (mm) per test image", "strength α", "Segmentation overlays",
                   "figures/example_", "Targets"):
        assert needle in text, needle
    assert '<tr class="baseline"><td>none</td>' in text
    assert text.count("<img ") >= 4  # two box plots, the strength curves, an overlay


# --- pieces ----------------------------------------------------------------------------------


def test_best_is_marked_only_where_it_beats_the_baseline() -> None:
    rows = [{"method": "noisy", "psnr": 30.0, "ssi": 1.0, "enl": None},
            {"method": "a", "psnr": 28.0, "ssi": 0.8, "enl": 5.0},
            {"method": "b", "psnr": 29.0, "ssi": 0.9, "enl": 7.0}]
    best = best_values(rows, ["psnr", "ssi", "enl"], key="method", baseline="noisy")
    assert best == {"ssi": 0.8}  # PSNR: nothing beats noisy; ENL: noisy has no value
    no_baseline = best_values(rows[1:], ["psnr", "ssi"], key="method", baseline="noisy")
    assert no_baseline == {"psnr": 29.0, "ssi": 0.8}


def test_pareto_front_and_crop() -> None:
    points = [(0.01, 20.0), (0.1, 25.0), (0.05, 19.0), (1.0, 24.0), (2.0, 30.0)]
    assert pareto_front(points) == [(0.01, 20.0), (0.1, 25.0), (2.0, 30.0)]
    import numpy as np

    image = np.zeros((64, 64))
    image[40:56, 40:56] = 1.0  # the only edges
    y, x = choose_crop(image, 32)
    assert y <= 40 and y + 32 >= 56 and x <= 40 and x + 32 >= 56


def test_level_folder_matches_by_value(tmp_path: Path) -> None:
    (tmp_path / "gamma_4").mkdir()
    (tmp_path / "rayleigh_0.25").mkdir()
    assert level_folder(tmp_path, "gamma", 4.0) == tmp_path / "gamma_4"
    assert level_folder(tmp_path, "rayleigh", 0.25) == tmp_path / "rayleigh_0.25"
    assert level_folder(tmp_path, "rayleigh", 0.5) is None


def test_esc_quotes() -> None:
    assert esc('a"b<c>&') == "a&quot;b&lt;c&gt;&amp;"


# --- the command -----------------------------------------------------------------------------


def test_report_command(evaluate_dir: Path, tmp_path: Path, capsys) -> None:
    _run(["report", str(evaluate_dir)])
    assert capsys.readouterr().out.strip() == str(evaluate_dir / REPORT_NAME)
    with pytest.raises(UsdenoiseError, match="nothing to report"):
        build_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(UsdenoiseError, match="results.json: cannot read"):
        build_report(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "no such folder" in capsys.readouterr().err
    assert invoked_command() is None  # outside a command: no command line to record
