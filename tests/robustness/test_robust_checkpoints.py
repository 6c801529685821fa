"""Catalogue rows for checkpoints, training states and written files (docs/robustness.md)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import robust_files as rf
from cli_helpers import run_cli

from usdenoise.core.errors import UsdenoiseError

TINY = {"depth": 2, "channels": 4}


def _denoise_with(capsys, tmp: Path, model: Path) -> tuple[int, str]:
    rf.png(tmp, "a.png", 24, 20)
    code, _, err = run_cli(capsys, "denoise", tmp / "a.png", "--out", tmp / "o", "--model",
                           model)
    return code, err


def _truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


CHECKPOINT_ROWS = {
    "checkpoint_missing": (lambda d: d / "nothing.safetensors", "not found"),
    "checkpoint_truncated": (lambda d: (_truncate(p := rf.checkpoint(d, **TINY)), p)[1],
                             "truncated"),
    "checkpoint_absurd_shape_header": (rf.safetensors_liar, "declares shape [6000000"),
    "checkpoint_wrong_shapes": (lambda d: rf.edit_sidecar(
        rf.checkpoint(d, **TINY), config={"depth": 3, "channels": 4}), "weights"),
    "checkpoint_absurd_config": (lambda d: rf.edit_sidecar(
        rf.checkpoint(d, **TINY), config={"depth": 2, "channels": 1_000_000}), "needs"),
    "checkpoint_unknown_arch": (lambda d: rf.edit_sidecar(rf.checkpoint(d, **TINY),
                                                          arch="bogusnet"), "bogusnet"),
    "checkpoint_sidecar_malformed": (lambda d: (
        (p := rf.checkpoint(d, **TINY)).with_suffix(".json").write_text("{not json"), p)[1],
        "not valid JSON"),
    "checkpoint_sidecar_missing": (lambda d: (
        (p := rf.checkpoint(d, **TINY)).with_suffix(".json").unlink(), p)[1], "sidecar"),
    "checkpoint_sha256_mismatch": (lambda d: rf.edit_sidecar(rf.checkpoint(d, **TINY),
                                                             sha256="0" * 64), "sha256"),
    "checkpoint_pickle_refused": (lambda d: rf.malicious_pickle(d, d / "MARKER"), "pickle"),
}


@pytest.mark.parametrize("row", sorted(CHECKPOINT_ROWS))
def test_checkpoint_row(row: str, tmp_path: Path, capsys) -> None:
    build, says = CHECKPOINT_ROWS[row]
    (tmp_path / "ck").mkdir()
    model = build(tmp_path / "ck")
    code, err = _denoise_with(capsys, tmp_path, model)
    line = rf.one_error_line(err)
    assert code == 2 and says.lower() in line.lower(), line
    assert not (tmp_path / "o").exists()
    assert not (tmp_path / "ck" / "MARKER").exists()


def test_checkpoint_malicious_pickle_never_runs(tmp_path: Path) -> None:
    """Even with allow_pickle, torch.load(weights_only=True) runs no code."""
    from usdenoise.checkpoint import load_model

    marker = tmp_path / "MARKER"
    path = rf.malicious_pickle(tmp_path, marker)
    with pytest.raises(UsdenoiseError) as info:
        load_model(path, allow_pickle=True)
    assert not marker.exists()
    assert "\n" not in str(info.value) and "model.pth" in str(info.value)


def test_checkpoint_files_follow_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        weights = rf.checkpoint(tmp_path, **TINY)
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (weights, weights.with_suffix(".json"))}
    assert modes == {0o644}


def test_train_state_malformed(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_state.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    code, _, err = run_cli(capsys, "train", "phantom:2", "--resume", run)
    line = rf.one_error_line(err)
    assert code == 2 and "train_state.safetensors" in line


def test_train_state_truncated_falls_back_to_previous(tmp_path: Path) -> None:
    import torch

    from usdenoise.training.state import (
        load_train_state,
        previous_state_path,
        save_train_state,
    )

    path = tmp_path / "train_state.safetensors"
    save_train_state(path, {"epoch": 1, "w": torch.ones(3)})
    save_train_state(path, {"epoch": 2, "w": torch.ones(3)})
    assert previous_state_path(path).is_file()
    _truncate(path)
    with pytest.warns(UserWarning, match="previous state"):
        assert load_train_state(path)["epoch"] == 1
    with pytest.raises(UsdenoiseError, match="train_state"):
        load_train_state(path, fallback=False)


def test_train_state_stale_temps_cleaned(tmp_path: Path) -> None:
    from usdenoise.core.files import make_temp_file
    from usdenoise.training.state import clean_run_folder

    stale = [make_temp_file(tmp_path, suffix=".safetensors"),
             tmp_path / ".model.json.0a1b2c3d.tmp.json", tmp_path / ".0a1b2c3d.tmp.png"]
    for p in stale[1:]:
        p.write_text("half")
    keep = tmp_path / "metrics.csv"
    keep.write_text("epoch\n")
    assert sorted(clean_run_folder(tmp_path)) == sorted(stale)
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_train_state_absurd_header(tmp_path: Path) -> None:
    from usdenoise.training.state import load_train_state

    path = rf.safetensors_liar(tmp_path).rename(tmp_path / "train_state.safetensors")
    with pytest.raises(UsdenoiseError, match="declares shape"):
        load_train_state(path)


# ---------------------------------------------------------------------------- names, reports


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "a/../../b", "", "..", "a\x00b"])
def test_manifest_id_cannot_escape(name: str, tmp_path: Path) -> None:
    from usdenoise.core.files import safe_child

    with pytest.raises(UsdenoiseError):
        safe_child(tmp_path / "out", name)
    assert safe_child(tmp_path / "out", "sub/x.png") == tmp_path / "out" / "sub" / "x.png"


def test_report_markdown_escaped() -> None:
    from usdenoise.reporting.tables import markdown_table

    text = markdown_table([{"method": "a|b`<script>\nx", "noise": "ray|leigh", "level": 0.5,
                            "psnr": 20.0}])
    row = [line for line in text.splitlines() if "script" in line][0]
    assert row.count("|") - row.count("\\|") == 3 and "<script>" not in text
    assert "&lt;script&gt;" in row and "\\`" in row


def test_report_csv_formula_escaped() -> None:
    from usdenoise.reporting.tables import records_to_csv

    text = records_to_csv([{"method": "=1+2", "id": "@cmd", "psnr": -0.5,
                            "ssim": float("-inf"), "note": "-rm"}])
    row = text.splitlines()[1]
    assert row.startswith("'=1+2,") and ",'@cmd," in row
    assert ",-0.5,-inf,'-rm" in row
