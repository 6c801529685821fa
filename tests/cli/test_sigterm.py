"""SIGTERM stops a command as a failure does: exit 143, one line, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_sigterm_during_evaluate_leaves_no_output_lock_or_temporary_folder(
        tmp_path: Path) -> None:
    """`usdenoise evaluate` stopped by SIGTERM while it measures: exit 143 with one line on
    stderr, no `--out` folder, no staged `.out.partial` or `.out.lock` beside it, and its
    temporary spill folder (in TMPDIR) removed. Without the handler the signal's default
    action ends the process at once (returncode -15) and leaves all of these behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "usdenoise", "evaluate", "phantom", "--limit", "6",
         "--methods", "bm3d", "--noise", "rayleigh:0.5", "--device", "cpu", "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # the spill folder exists once measuring has begun (BM3D: seconds per image here)
        while not any(p.name.startswith("usdenoise-evaluate-") for p in tmp.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "evaluate did not start measuring"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert lines == ["usdenoise: stopped by SIGTERM; nothing more is written"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert list(tmp.iterdir()) == []
