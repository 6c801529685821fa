"""`usdenoise denoise --skip-existing`: continuing an earlier (killed) run into its folder.

Only a folder an earlier `usdenoise denoise` wrote (its `.usdenoise-output.json` lists the
outputs) is continued; the outputs it lists are left alone, everything else is denoised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from io_fixtures import gradient, write_pillow

import usdenoise.core.files as core_files
from usdenoise.cli.app import main
from usdenoise.denoise.files import denoise_files

MARKER = ".usdenoise-output.json"


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        write_pillow(root / name, gradient(20, 16, bits=8, seed=i))
    return root


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != MARKER}


def listed(out: Path) -> list[str]:
    return json.loads((out / MARKER).read_text())["files"]


def test_continues_where_an_earlier_run_stopped(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert run_cli(["denoise", folder, "--method", "lee", "--out", out]) == 0
    full = files(out)
    assert listed(out) == ["a.png", "b.png", "c.png"]
    (out / "b.png").unlink()  # as if the run had been killed before b.png
    (out / "a.png").write_bytes(full["a.png"] + b"")  # a.png: left as it is
    before = (out / "a.png").stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli(["denoise", folder, "--method", "lee", "--skip-existing", "--out", out]) == 0
    err = capsys.readouterr().err
    assert "denoised 1 file(s)" in err and "2 already denoised by an earlier run" in err
    assert files(out) == full  # the same outputs as the one complete run
    assert (out / "a.png").stat().st_mtime_ns == before  # not rewritten
    assert listed(out) == ["a.png", "b.png", "c.png"]
    # nothing left to do: exit 0, every input counted as done earlier
    assert run_cli(["denoise", folder, "--method", "lee", "--skip-existing", "--out", out]) == 0
    assert "denoised 0 file(s)" in capsys.readouterr().err
    summary = denoise_files([folder], out_dir=out, method="lee", params={}, skip_existing=True)
    assert summary.written == [] and [p.name for p in summary.existing] == ["a.png", "b.png",
                                                                              "c.png"]


def test_without_skip_existing_an_earlier_output_is_not_replaced(folder: Path, tmp_path: Path,
                                                                 capsys) -> None:
    out = tmp_path / "out"
    assert run_cli(["denoise", folder, "--method", "lee", "--out", out]) == 0
    capsys.readouterr()
    assert run_cli(["denoise", folder, "--method", "lee", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "a.png: output exists" in err and "--skip-existing" in err and err.count("\n") == 1


def test_refuses_a_folder_usdenoise_did_not_write(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert run_cli(["denoise", folder, "--method", "lee", "--skip-existing", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and MARKER in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing written


def test_refuses_another_commands_folder(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sim"
    assert run_cli(["simulate", "phantom:1", "--size", "16", "--out", out]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert run_cli(["denoise", folder, "--method", "lee", "--skip-existing", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "`usdenoise simulate`" in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_an_unlisted_file_in_a_continued_folder_is_refused(folder: Path, tmp_path: Path,
                                                           capsys) -> None:
    out = tmp_path / "out"
    assert run_cli(["denoise", folder / "a.png", "--method", "lee", "--out", out]) == 0
    (out / "b.png").write_bytes(b"the user's own b.png")
    capsys.readouterr()
    assert run_cli(["denoise", folder, "--method", "lee", "--skip-existing", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "b.png" in err and "--overwrite" in err and err.count("\n") == 1
    assert (out / "b.png").read_bytes() == b"the user's own b.png"
    assert not (out / "c.png").exists()  # refused before anything was written


def test_skip_existing_and_overwrite_together_are_refused(folder: Path, tmp_path: Path,
                                                          capsys) -> None:
    out = tmp_path / "out"
    assert run_cli(["denoise", folder, "--method", "lee", "--skip-existing", "--overwrite",
                    "--out", out]) == 2
    assert "--skip-existing" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(not hasattr(core_files, "crash_point"), reason="no crash hook in core.files")
def test_killed_run_leaves_no_half_written_file_and_is_continued(folder: Path,
                                                                 tmp_path: Path) -> None:
    """SIGKILL once b.png's temporary file is complete, before it is renamed: a.png is there,
    b.png is not (no half-written file under its name), and --skip-existing finishes the job
    with the same bytes as one uninterrupted run."""
    out, whole = tmp_path / "out", tmp_path / "whole"
    env = {**os.environ, "OMP_NUM_THREADS": "1", core_files.CRASH_ENV: "rename:b.png"}
    command = [sys.executable, "-m", "usdenoise", "denoise", str(folder), "--method", "lee",
               "--out", str(out)]
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode != 0, killed.stderr
    names = sorted(files(out))
    assert [n for n in names if not n.startswith(".")] == ["a.png"]  # no b.png at all
    assert [n for n in names if n.startswith(".b.png.")]  # its complete temporary file
    assert listed(out) == ["a.png", "b.png", "c.png"]  # claimed before the first write
    assert run_cli(["denoise", folder, "--method", "lee", "--skip-existing", "--out", out]) == 0
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # the killed run's temp
    assert run_cli(["denoise", folder, "--method", "lee", "--out", whole]) == 0
    assert files(out) == files(whole)
    assert np.array_equal(np.frombuffer(files(out)["b.png"], np.uint8),
                          np.frombuffer(files(whole)["b.png"], np.uint8))
