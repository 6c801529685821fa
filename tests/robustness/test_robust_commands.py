"""Catalogue rows for options, outputs and folders (docs/robustness.md).

Each error row: exit 2, one `usdenoise: error:` line naming the option or file, no
traceback, no partial output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import robust_files as rf
from cli_helpers import run_cli

# id: (arguments with {tmp} for the test folder, what the line must contain, xfail reason)
OPTION_ROWS = {
    "unknown_option": (["denoise", "{tmp}/a.png", "--out", "{tmp}/o", "--bogus"], "--bogus",
                       None),
    "malformed_int": (["simulate", "phantom:1", "--size", "abc", "--out", "{tmp}/o"], "--size",
                      None),
    "limit_zero": (["simulate", "phantom:1", "--limit", "0", "--out", "{tmp}/o"], "--limit",
                   None),
    "size_negative": (["simulate", "phantom:1", "--size", "-5", "--out", "{tmp}/o"], "--size",
                      None),
    "size_huge": (["simulate", "phantom:1", "--size", "1000000", "--out", "{tmp}/o"], "--size",
                  None),
    "noise_nan": (["simulate", "phantom:1", "--noise", "rayleigh:nan", "--out", "{tmp}/o"],
                  "nan", None),
    "noise_inf": (["simulate", "phantom:1", "--noise", "rayleigh:inf", "--out", "{tmp}/o"],
                  "inf", None),
    "noise_unknown_model": (["simulate", "phantom:1", "--noise", "bogus:0.1", "--out",
                             "{tmp}/o"], "bogus", None),
    "noise_out_of_range": (["simulate", "phantom:1", "--noise", "rayleigh:-3", "--out",
                            "{tmp}/o"], "rayleigh", None),
    "data_unknown": (["simulate", "bogus:x", "--out", "{tmp}/o"], "bogus", None),
    "data_missing_folder": (["simulate", "folder:{tmp}/nowhere", "--out", "{tmp}/o"],
                            "nowhere", None),
    "phantom_count_malformed": (["simulate", "phantom:many", "--out", "{tmp}/o"], "phantom",
                                None),
    "method_unknown": (["denoise", "{tmp}/a.png", "--out", "{tmp}/o", "--method", "nope"],
                       "nope", None),
    "param_malformed": (["denoise", "{tmp}/a.png", "--out", "{tmp}/o", "--method", "median",
                         "--param", "window"], "window", None),
    "param_out_of_range": (["denoise", "{tmp}/a.png", "--out", "{tmp}/o", "--method",
                            "median", "--param", "window=-3"], "window", None),
    "workers_zero": (["denoise", "{tmp}/a.png", "--out", "{tmp}/o", "--workers", "0"],
                     "--workers", None),
    "dicom_as_unknown": (["denoise", "{tmp}/a.png", "--out", "{tmp}/o", "--dicom-as", "gif"],
                         "--dicom-as", None),
    "evaluate_examples_negative": (["evaluate", "phantom:1", "--methods", "median",
                                    "--examples", "-1", "--out", "{tmp}/o"], "--examples",
                                   None),
    "evaluate_strength_out_of_range": (["evaluate", "phantom:1", "--methods", "median",
                                        "--strengths", "2", "--out", "{tmp}/o"],
                                       "--strengths", None),
    "evaluate_no_methods": (["evaluate", "phantom:1", "--methods", "", "--out", "{tmp}/o"],
                            "--methods", None),
    "train_loss_unknown": (["train", "phantom:2", "--loss", "bogus", "--out", "{tmp}/run",
                            "--epochs", "1"], "bogus", None),
    "train_epochs_zero": (["train", "phantom:2", "--epochs", "0", "--out", "{tmp}/run"],
                          "epochs", None),
    "inspect_limit_zero": (["inspect", "phantom:1", "--limit", "0"], "--limit", None),
    "inspect_out_not_json": (["inspect", "phantom:1", "--out", "{tmp}/x.txt"], "--out", None),
    "segment_evaluate_split_unknown": (["segment", "evaluate", "phantom:1", "--segmenter",
                                        "{tmp}/nomodel", "--split", "bogus", "--out",
                                        "{tmp}/o"], "--split", None),
}


def _args(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in args]


@pytest.mark.parametrize("row", [pytest.param(r, marks=pytest.mark.xfail(
    strict=True, reason=OPTION_ROWS[r][2])) if OPTION_ROWS[r][2] else r
    for r in sorted(OPTION_ROWS)])
def test_option_row(row: str, tmp_path: Path, capsys) -> None:
    args, says, _ = OPTION_ROWS[row]
    rf.png(tmp_path, "a.png", 24, 20)
    code, _, err = run_cli(capsys, *_args(args, tmp_path))
    line = rf.one_error_line(err)
    assert code == 2
    assert says.lower() in line.lower(), line
    assert not (tmp_path / "o").exists() and not (tmp_path / "run" / "model.json").exists()


# ---------------------------------------------------------------------------- outputs


def _data_folder(tmp: Path) -> Path:
    """A folder data set of two images with masks (the user's ground truth)."""
    data = tmp / "D"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(2):
        rf.png(data / "images", f"s{i}.png", 24, 20, seed=i)
        rf.write_pillow(data / "masks" / f"s{i}.png", (rf.gradient(24, 20) > 128)
                        .astype("uint8"))
    return data


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


def test_output_is_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "o").write_text("mine")
    code, _, err = run_cli(capsys, "simulate", "phantom:1", "--out", tmp_path / "o")
    assert code == 2 and "--out" in rf.one_error_line(err) and "is a file" in err
    assert (tmp_path / "o").read_text() == "mine"


def test_output_unwritable_under_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "f").write_text("x")
    code, _, err = run_cli(capsys, "simulate", "phantom:1", "--out", tmp_path / "f" / "o")
    line = rf.one_error_line(err)
    assert code == 2 and "f/o" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_output_unwritable_folder(tmp_path: Path, capsys) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = run_cli(capsys, "simulate", "phantom:1", "--out", locked / "o")
    finally:
        locked.chmod(0o700)
    assert code == 2 and "ro/o" in rf.one_error_line(err)


def test_output_equal_to_input_with_overwrite(tmp_path: Path, capsys) -> None:
    data = _data_folder(tmp_path)
    before = _snapshot(data)
    code, _, err = run_cli(capsys, "simulate", f"folder:{data}", "--out", data, "--overwrite",
                           "--size", "0")
    line = rf.one_error_line(err)
    assert code == 2 and "--out" in line and "input folder" in line
    assert _snapshot(data) == before, "the user's masks were touched"


def test_output_inside_input(tmp_path: Path, capsys) -> None:
    data = _data_folder(tmp_path)
    code, _, err = run_cli(capsys, "simulate", f"folder:{data}", "--out", data / "sim")
    assert code == 2 and "inside the input folder" in rf.one_error_line(err)
    assert not (data / "sim").exists()


def test_output_evaluate_inside_input(tmp_path: Path, capsys) -> None:
    data = _data_folder(tmp_path)
    code, _, err = run_cli(capsys, "evaluate", f"folder:{data}", "--methods", "median",
                           "--noise", "rayleigh:0.25", "--size", "32", "--split", "all",
                           "--out", data)  # all: two images leave the test split empty
    assert code == 2 and "input folder" in rf.one_error_line(err)


def test_output_denoise_into_own_input_folder(tmp_path: Path, capsys) -> None:
    rf.png(tmp_path, "a.png", 24, 20)
    code, _, err = run_cli(capsys, "denoise", tmp_path / "a.png", "--out", tmp_path,
                           "--method", "median")
    assert code == 2 and "a.png" in rf.one_error_line(err)


def test_output_exists_without_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "simulate", "phantom:1", "--size", "32", "--out", out)
    assert code == 2 and "--overwrite" in rf.one_error_line(err)
    assert _snapshot(out) == {"notes.txt": b"mine"}


def test_output_overwrite_removes_only_owned(tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    code, _, err = run_cli(capsys, "simulate", "phantom:3", "--size", "32", "--out", out)
    assert code == 0, err
    marker = json.loads((out / ".usdenoise-output.json").read_text())
    assert marker["command"] == "simulate" and "manifest.json" in marker["files"]
    (out / "notes.txt").write_text("mine")
    (out / "noisy" / "mine.png").write_bytes(b"user")
    code, _, err = run_cli(capsys, "simulate", "phantom:1", "--size", "32", "--out", out,
                           "--overwrite")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "noisy" / "mine.png").read_bytes() == b"user"
    manifest = json.loads((out / "manifest.json").read_text())
    ids = {e["id"] for e in manifest["images"]}
    left = {p.stem for p in (out / "clean").iterdir()}
    assert left == ids, "stale files of the earlier run were kept"


def test_output_in_use_by_live_run(tmp_path: Path, capsys) -> None:
    from usdenoise.core.files import lock_path

    out = tmp_path / "o"
    lock_path(out).write_text(json.dumps({"pid": os.getppid(), "command": "evaluate"}))
    code, _, err = run_cli(capsys, "simulate", "phantom:1", "--size", "32", "--out", out)
    line = rf.one_error_line(err)
    assert code == 2 and "in use" in line and str(os.getppid()) in line
    assert not out.exists()


def test_output_stale_lock_taken_over(tmp_path: Path, capsys) -> None:
    from usdenoise.core.files import lock_path

    out = tmp_path / "o"
    lock_path(out).write_text(json.dumps({"pid": 2**22 + 12345, "command": "simulate"}))
    code, _, err = run_cli(capsys, "simulate", "phantom:1", "--size", "32", "--out", out)
    assert code == 0, err
    assert (out / "manifest.json").is_file() and not lock_path(out).exists()


# ---------------------------------------------------------------------------- folders


def test_folder_symlink_loop(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "loop").symlink_to(src, target_is_directory=True)
    rf.png(src, "a.png", 24, 20)
    code, _, err = run_cli(capsys, "denoise", src, "--recursive", "--out", tmp_path / "o",
                           "--method", "median")
    assert "Traceback" not in err
    assert code in (0, 2)
    assert code == 2 or (tmp_path / "o" / "a.png").is_file()


def test_folder_empty(tmp_path: Path, capsys) -> None:
    (tmp_path / "in").mkdir()
    code, _, err = run_cli(capsys, "denoise", tmp_path / "in", "--out", tmp_path / "o")
    assert code == 2 and "in" in rf.one_error_line(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without permission")
def test_folder_unreadable_file(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rf.png(src, "a.png", 24, 20).chmod(0)
    code, _, err = run_cli(capsys, "denoise", src, "--out", tmp_path / "o", "--method",
                           "median")
    assert code == 2 and "a.png" in err.splitlines()[-1]


def test_folder_non_utf8_name(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    name = os.fsdecode(b"scan\xff.png")
    rf.png(src, name, 24, 20)
    code, _, err = run_cli(capsys, "denoise", src, "--out", tmp_path / "o", "--method",
                           "median")
    assert "Traceback" not in err and code in (0, 2)
    if code == 2:
        rf.one_error_line(err)


def test_folder_very_long_name(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rf.png(src, "x" * 240 + ".png", 24, 20)
    code, _, err = run_cli(capsys, "denoise", src, "--out", tmp_path / "o", "--method",
                           "median")
    assert "Traceback" not in err and code in (0, 2)
    if code == 2:
        assert "x" * 40 in rf.one_error_line(err)
    else:
        assert (tmp_path / "o" / ("x" * 240 + ".png")).is_file()
