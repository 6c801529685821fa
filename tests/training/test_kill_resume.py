"""`usdenoise train` killed with SIGKILL resumes to the weights of an uninterrupted run, bit
for bit.

Every run is a `python -m usdenoise train` subprocess on the CPU with --threads 1: 8 phantoms
of 32², 16² crops, a 4-channel DiConvAE (dropout 0.05, so the global RNG matters), batches of
2, 2 batches per epoch, 3 epochs with the cosine schedule. The kill points are deterministic:
USDENOISE_CRASH_AT (`core.files.crash_point`) makes the process SIGKILL itself after its N-th
optimizer step (`step@N`), or once the temporary file of the train state is complete and
before the rename that commits it (`rename:train_state.safetensors@K`). SIGKILL runs no
`finally` and no atexit, so the folder is left as a power cut would leave it.

Exact equality (torch.equal, no tolerance) holds because every random draw is seeded from
(seed, epoch[, sample index]) rather than from what ran before, and the train state carries
the weights, the Adam moments and the scheduler: a resumed run repeats the interrupted epoch
with the same order, crops, speckle and dropout masks, on the same single thread.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import CRASH_ENV, crash_point
from usdenoise.training.state import load_train_state, previous_state_path, save_train_state

ARGS = ["phantom:8", "--size", "32", "--crop", "16", "--batch-size", "2", "--epochs", "3",
        "--limit", "2", "--arch-param", "channels=4,4,4,4", "--device", "cpu",
        "--threads", "1", "--no-progress", "--seed", "1"]
STATE = "train_state.safetensors"
KILLED = -signal.SIGKILL


def _train(*args: str | Path, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for name in (CRASH_ENV, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(name, None)
    if crash is not None:
        env[CRASH_ENV] = crash
    return subprocess.run([sys.executable, "-m", "usdenoise", "train", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def _temps(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if ".tmp" in p.name)


def _epoch(run: Path) -> int:
    return load_train_state(run / STATE, fallback=False)["progress"]["epoch"]


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return [{k: v for k, v in row.items() if k not in ("seconds", "crops_per_second")}
                for row in csv.DictReader(handle)]


def _tensors(tree: object, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = (tree.items() if isinstance(tree, dict)
             else enumerate(tree) if isinstance(tree, (list, tuple)) else ())
    return {k: v for key, value in items for k, v in _tensors(value, f"{prefix}/{key}").items()}


def _assert_same_run(expected: Path, run: Path) -> None:
    """Weights, best weights, the full train state (Adam moments, scheduler, RNG) and the
    metrics of `run` equal those of the uninterrupted run, exactly."""
    for name in ("model.safetensors", "model_best.safetensors"):
        a, b = load_file(str(expected / name)), load_file(str(run / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a, b = load_train_state(expected / STATE), load_train_state(run / STATE)
    assert a["progress"] == b["progress"] and a["scheduler"] == b["scheduler"]
    ta, tb = _tensors({k: a[k] for k in ("model", "optimizer", "rng")}), _tensors(
        {k: b[k] for k in ("model", "optimizer", "rng")})
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert _rows(expected) == _rows(run)
    assert _temps(run) == []


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("straight") / "run"
    done = _train(*ARGS, "--out", run)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


@pytest.mark.slow  # subprocesses, ~5 s of CPU each
def test_killed_after_a_step_and_during_the_state_write_resumes_bit_for_bit(
    tmp_path: Path, straight: Path
) -> None:
    run = tmp_path / "run"
    # SIGKILL after the 3rd optimizer step: the 1st step of epoch 2, epoch 1 committed
    killed = _train(*ARGS, "--out", run, crash="step@3")
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    assert _epoch(run) == 1
    # resumed, then SIGKILLed with epoch 2's state complete in its temporary file, not renamed
    killed = _train("--resume", run, "--threads", "1", crash=f"rename:{STATE}")
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    assert [name for name in _temps(run) if name.startswith(f".{STATE}.")], _temps(run)
    assert _epoch(run) == 1  # the rename is the commit: epoch 2 did not happen
    # the same --resume command finishes the run; the temporary file is gone
    done = _train("--resume", run, "--threads", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_run(straight, run)


@pytest.mark.slow  # subprocesses, ~5 s of CPU each
def test_killed_before_the_first_state_starts_again_with_the_same_command(
    tmp_path: Path, straight: Path
) -> None:
    run = tmp_path / "run"
    killed = _train(*ARGS, "--out", run, crash=f"rename:{STATE}")
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    assert not (run / STATE).exists() and _temps(run)
    # nothing to resume: one line saying so
    refused = _train("--resume", run, "--threads", "1")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "no training state" in lines[0]
    # the first command again: the folder holds no state, so it starts over
    done = _train(*ARGS, "--out", run)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_run(straight, run)


@pytest.mark.slow  # subprocesses, ~5 s of CPU each
def test_truncated_state_resumes_from_the_previous_one(tmp_path: Path, straight: Path) -> None:
    run = tmp_path / "run"
    killed = _train(*ARGS, "--out", run, crash="step@5")  # in epoch 3
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    assert _epoch(run) == 2 and previous_state_path(run / STATE).is_file()
    state = run / STATE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # a copy cut short
    done = _train("--resume", run, "--threads", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from the previous state train_state.prev.safetensors" in done.stderr
    _assert_same_run(straight, run)  # epoch 2 was simply trained again


def test_state_altered_in_place_is_refused_by_its_sha256(tmp_path: Path) -> None:
    """Same size, one byte changed inside a tensor: the header check cannot see it, the
    digest in the header does; the previous state is used instead."""
    path = tmp_path / STATE
    save_train_state(path, {"epoch": 1, "w": torch.zeros(4)})
    save_train_state(path, {"epoch": 2, "w": torch.zeros(4)})
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40  # the last byte of the body: tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(UsdenoiseError, match="sha256"):
        load_train_state(path, fallback=False)
    with pytest.warns(UserWarning, match="previous state"):
        assert load_train_state(path)["epoch"] == 1


def test_crash_point_is_inert_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CRASH_ENV, raising=False)
    crash_point("step")
    monkeypatch.setenv(CRASH_ENV, "rename:other.json")
    crash_point("step")
    crash_point("rename:model.json")
