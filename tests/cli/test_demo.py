"""`usdenoise demo` on a tiny plan: outputs, and missing methods become notes, not crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli

import usdenoise.cli.demo as demo
from usdenoise.cli.app import main
from usdenoise.core.errors import UsdenoiseError
from usdenoise.denoise.network import default_weights_path

TINY = demo.DemoPlan(phantoms=6, size=32, noises=("rayleigh:0.5",),
                     methods=("default", "lee", "median"), train_epochs=1)
WEIGHTS = default_weights_path()


@pytest.fixture
def tiny_plan(monkeypatch: pytest.MonkeyPatch) -> demo.DemoPlan:
    monkeypatch.setattr(demo, "QUICK", TINY)
    return TINY


def test_plans_are_sane() -> None:
    for plan in (demo.QUICK, demo.FULL):
        assert plan.phantoms >= 10 and plan.size >= 64 and plan.noises
        assert "lee" in plan.methods and "default" in plan.methods
    assert demo.QUICK.size <= demo.FULL.size and demo.QUICK.phantoms <= demo.FULL.phantoms


def test_run_demo_quick_writes_results(tmp_path: Path, tiny_plan) -> None:
    out = tmp_path / "demo"
    records, notes = demo.run_demo(out, quick=True)
    methods = [r["method"] for r in records]
    expected = ["noisy", "lee", "median"] + (["default"] if WEIGHTS.is_file() else [])
    assert sorted(methods) == sorted(expected)
    assert all(r["level"] == 0.5 and r["data"] == "phantom:6" for r in records)
    for name in ("results.json", "results.csv", "results.md", "per_image.csv", "splits.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text())[0]["method"] == "noisy"
    assert (out / "examples" / "rayleigh_0.5.png").is_file()
    noisy = next(r for r in records if r["method"] == "noisy")
    assert next(r for r in records if r["method"] == "lee")["psnr"] > noisy["psnr"]
    if not WEIGHTS.is_file():  # the missing model is a note that says why, not a crash
        (note,) = [n for n in notes if n.startswith("default skipped")]
        assert "default.safetensors" in note
    # a second run into the same folder needs overwrite
    with pytest.raises(UsdenoiseError, match="--overwrite"):
        demo.run_demo(out, quick=True)
    demo.run_demo(out, quick=True, overwrite=True)


def test_unavailable_method_becomes_a_note(tmp_path: Path, monkeypatch) -> None:
    plan = demo.DemoPlan(phantoms=6, size=32, noises=("rayleigh:0.25",),
                         methods=("lee", "bm3d"), train_epochs=1)
    monkeypatch.setattr(demo, "QUICK", plan)
    real = demo._unavailable
    monkeypatch.setattr(demo, "_unavailable", lambda name: (
        "bm3d: needs the bm3d extra (pip install 'usdenoise[bm3d]')" if name == "bm3d"
        else real(name)))
    records, notes = demo.run_demo(tmp_path / "d", quick=True)
    assert [r["method"] for r in records] == ["noisy", "lee"]
    assert notes == ["bm3d skipped: bm3d: needs the bm3d extra (pip install 'usdenoise[bm3d]')"]


def test_unavailable_reports_the_reason() -> None:
    assert demo._unavailable("lee") is None
    assert "unknown method" in demo._unavailable("no_such_method")


def test_cli_demo_prints_table_and_notes(tmp_path: Path, tiny_plan, capsys) -> None:
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--quick", "--out", str(out), "--device", "cpu"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert "| lee |" in captured.out and "| noisy |" in captured.out
    assert f"{out}/results.md" in captured.err.replace("\n", "")
    if not WEIGHTS.is_file():
        assert "note: default skipped" in captured.err


def test_cli_demo_keeps_an_earlier_demo_unless_overwrite(tmp_path: Path, tiny_plan,
                                                         capsys) -> None:
    out = tmp_path / "demo"
    assert run_cli(capsys, "demo", "--quick", "--out", out)[0] == 0
    (out / "results.json").write_text("[]")  # marks the earlier results
    code, stdout, err = run_cli(capsys, "demo", "--quick", "--out", out)
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert "results.json" in err and "--overwrite" in err
    assert (out / "results.json").read_text() == "[]"
    code, _, err = run_cli(capsys, "demo", "--quick", "--out", out, "--overwrite")
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())[0]["method"] == "noisy"


def test_train_option_adds_the_trained_model_and_reruns(tmp_path: Path, monkeypatch) -> None:
    # the demo model trains on 4 x phantoms images in 64 px crops with batches of 16
    plan = demo.DemoPlan(phantoms=8, size=64, noises=("rayleigh:0.5",), methods=("lee",),
                         train_epochs=1)
    monkeypatch.setattr(demo, "QUICK", plan)
    out = tmp_path / "demo"
    records, notes = demo.run_demo(out, quick=True, train=True)
    assert [r["method"] for r in records] == ["noisy", "lee", "diconvae (trained now)"]
    assert (out / "trained-model" / "model_best.safetensors").is_file()
    assert any(n.startswith("trained a fast DiConvAE") for n in notes)
    with pytest.raises(UsdenoiseError, match="--overwrite"):  # refused before training
        demo.run_demo(out, quick=True, train=True)
    again, _ = demo.run_demo(out, quick=True, train=True, overwrite=True)  # same seed, same model
    assert [r["psnr"] for r in again] == pytest.approx([r["psnr"] for r in records], abs=1e-4)


def test_overwrite_never_removes_a_foreign_folder(tmp_path: Path, tiny_plan) -> None:
    out = tmp_path / "demo"
    (out / "trained-model").mkdir(parents=True)
    (out / "trained-model" / "notes.txt").write_text("mine")
    with pytest.raises(UsdenoiseError, match="not a training run"):
        demo.run_demo(out, quick=True, train=True, overwrite=True)
    assert (out / "trained-model" / "notes.txt").read_text() == "mine"


def test_example_tiles_have_file_safe_names(tmp_path: Path) -> None:
    import torch

    from usdenoise.reporting.figures import save_example_grid

    image = torch.rand(1, 1, 16, 16)
    save_example_grid(tmp_path / "grid.png", clean=[image], ids=["a"], title="t",
                      outputs={"diconvae (trained now)": [image], "lee/7": [image]})
    assert (tmp_path / "grid.png").is_file()
    assert sorted(p.name for p in (tmp_path / "grid").iterdir()) == [
        "a_clean.png", "a_diconvae-trained-now.png", "a_lee-7.png"]
