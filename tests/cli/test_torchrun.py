"""`torchrun --standalone --nproc_per_node 2 -m usdenoise evaluate|denoise` (gloo on CPU).

The two processes split the images (image i to process i % 2) and rank 0 merges: the files
must be those of one process, exactly, but for the timing fields. Five images, so the
shares differ in size (3 and 2), and three examples, so the example figure takes images
from both processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist
from io_fixtures import gradient, write_pillow

import usdenoise
from usdenoise.cli.app import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                       reason="torch.distributed with gloo is not available"),
]
TIMING = {"seconds_per_image"}


def torchrun(*args: object) -> subprocess.CompletedProcess:
    try:
        import torch.distributed.run  # noqa: F401  (what the torchrun script runs)
    except ImportError:
        pytest.skip("torchrun (torch.distributed.run) is not available")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "usdenoise", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def run_here(*args: object) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    assert exit_info.value.code == 0


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def tree(folder: Path) -> dict[str, bytes]:
    """Every file but the ownership marker (it holds the pid) and timing-bearing tables."""
    skip = {".usdenoise-output.json", "results.json", "results.md", "results.csv",
            "report.html"}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip}


def test_evaluate_two_processes_write_what_one_writes(tmp_path: Path) -> None:
    args = ["evaluate", "phantom:12", "--size", "32", "--methods", "lee,median", "--param",
            "median.window=3", "--noise", "rayleigh:0.25,0.5", "--split", "all", "--limit", "5",
            "--examples", "3", "--strengths", "0.5,1"]
    proc = torchrun(*args, "--out", tmp_path / "two")
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert proc.stdout.count("| lee |") == 2  # the tables are printed once (rank 0), 2 levels
    run_here(*args, "--out", tmp_path / "one")
    one, two = tmp_path / "one", tmp_path / "two"
    records = json.loads((two / "results.json").read_text())
    assert [r["n_images"] for r in records] == [5] * 6
    assert without_timing(records) == without_timing(json.loads((one / "results.json")
                                                                 .read_text()))
    assert tree(two) == tree(one)  # per_image.csv, curves.json, splits.json, every figure
    assert len(list((two / "examples" / "rayleigh_0.5").glob("*.png"))) == 3 * 4


def test_denoise_two_processes_write_what_one_writes(tmp_path: Path) -> None:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    for i in range(4):
        write_pillow(source / f"img{i}.png", gradient(20, 16, bits=8 + 8 * (i % 2), seed=i))
    write_pillow(source / "sub" / "deep.png", gradient(20, 16, bits=8, seed=9))
    (source / "img2b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # rank 0 or 1 skips it
    args = ["denoise", source, "--recursive", "--method", "lee"]
    proc = torchrun(*args, "--out", tmp_path / "two")
    assert proc.returncode == 0, proc.stderr[-6000:]
    summary = [line for line in proc.stderr.splitlines() if line.startswith("denoised")]
    assert summary == [f"denoised 5 file(s) into {tmp_path / 'two'}; skipped 1 file(s) "
                       "(partial run: the skipped inputs are listed above)"]
    assert proc.stderr.count("warning: skipped") == 1
    run_here(*args, "--out", tmp_path / "one")  # the CLI reports skipped files itself
    assert tree(tmp_path / "two") == tree(tmp_path / "one")
    assert len(tree(tmp_path / "two")) == 5
    marker = json.loads((tmp_path / "two" / ".usdenoise-output.json").read_text())
    assert marker["command"] == "denoise" and len(marker["files"]) == 5
    # --skip-existing continues the folder under torchrun too: nothing left to do
    again = torchrun(*args, "--skip-existing", "--out", tmp_path / "two")
    assert again.returncode == 0, again.stderr[-6000:]
    assert "denoised 0 file(s)" in again.stderr and "5 already denoised" in again.stderr


def test_denoise_strict_failure_in_one_share_stops_both(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        write_pillow(source / f"img{i}.png", gradient(20, 16, bits=8, seed=i))
    # position 1: rank 1 meets it, rank 0 prints it (the one error line of the launch)
    (source / "img0b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    proc = torchrun("denoise", source, "--method", "lee", "--strict", "--out", tmp_path / "o")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("usdenoise: error")]
    assert len(errors) == 1 and "img0b.png" in errors[0], proc.stderr[-6000:]
    # no traceback from our code (torchrun's launcher prints its own for a failed child)
    # a frame of our code names a file inside the package folder; "usdenoise/" alone would
    # also match torch's frames when the checkout itself is called usdenoise (git clone's
    # default), whose .venv holds torch
    here = Path(usdenoise.__file__).parent
    for package in {str(here), str(here.resolve())}:
        assert package + os.sep not in proc.stderr, proc.stderr[-6000:]
    assert not (tmp_path / "o").exists()  # nothing from either process is left
