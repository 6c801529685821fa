"""torchrun with 2 CPU processes (gloo) gives the weights of one process on the same global batch.

Why they agree: the sampler, crops and speckle are seeded per sample / per epoch, not per
process, so with `--batch-size 4` each of the 2 processes sees 2 images of exactly the
4-image global batch that the single process sees, with the same crop and speckle. The
network is a BatchNorm-free DnCNN (depth 2: conv-ReLU-conv, no dropout), because on CPU
BatchNorm statistics would be per process (SyncBatchNorm needs CUDA, where fit() uses it).

Tolerance: DDP averages two half-batch gradients, (g1 + g2) / 2, where the single process
sums all four images at once; the float32 sums differ in rounding order only (~1e-7
relative per step). Adam divides by sqrt(v) and can amplify that for near-zero gradients, so
after 6 steps we allow an absolute 1e-5 on weights whose scale is 1e-3..1 (measured: ~1e-9),
and 1e-5 relative on the validation figures (summed in float64 over processes).
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from usdenoise.models import build_network
from usdenoise.training.config import TrainConfig
from usdenoise.training.loop import fit

ARGS = ["phantom:16", "--size", "16", "--crop", "16", "--arch", "dncnn",
        "--arch-param", "channels=4", "--arch-param", "depth=2", "--loss", "l1+ssim",
        "--batch-size", "4", "--epochs", "2", "--limit", "3", "--device", "cpu",
        "--no-progress", "--seed", "7", "--schedule", "cosine", "--clip-grad", "1.0"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(tmp_path: Path) -> None:
    ddp_run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               "-m", "usdenoise", "train", *ARGS, "--out", str(ddp_run)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[:6000]
    assert proc.stderr.count("best model:") == 1  # only rank 0 reports (and writes)
    assert not [p.name for p in ddp_run.iterdir() if ".tmp" in p.name]

    single = fit(TrainConfig(
        data="phantom:16", image_size=16, crop=16, arch="dncnn",
        model={"channels": 4, "depth": 2}, loss="l1+ssim", batch_size=4, epochs=2, limit=3,
        device="cpu", progress=False, seed=7, schedule="cosine", clip_grad=1.0,
        out=str(tmp_path / "single"),
    )).parent

    ddp_weights = load_file(str(ddp_run / "model.safetensors"))
    single_weights = load_file(str(single / "model.safetensors"))
    assert ddp_weights.keys() == single_weights.keys()
    for key, value in ddp_weights.items():
        torch.testing.assert_close(value, single_weights[key], atol=1e-5, rtol=0, msg=key)
    # the weights moved well beyond the tolerance: this is not two untrained networks
    torch.manual_seed(7)  # fit() seeds like this before building the network
    initial = build_network("dncnn", "fast", channels=4, depth=2).state_dict()
    moved = max((ddp_weights[k] - initial[k]).abs().max().item() for k in initial)
    assert moved > 1e-3

    ddp_rows, single_rows = _rows(ddp_run), _rows(single)
    assert len(ddp_rows) == len(single_rows) == 2
    for a, b in zip(ddp_rows, single_rows, strict=True):
        for key in ("train_loss", "val_loss", "val_psnr", "val_ssim", "lr"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), key


@pytest.mark.slow
def test_task_loss_under_two_processes_matches_one_process(tmp_path: Path) -> None:
    """Each process passes the task loss the masks of its own rows: same weights as one process
    (Dice is a per-image mean and cross-entropy a per-pixel mean, so half-batch gradients
    average to the full batch's)."""
    pytest.importorskip("monai")
    from usdenoise.checkpoint import save_model
    from usdenoise.models.segmenters import build_segmenter

    torch.manual_seed(0)
    net = build_segmenter("segnet", "fast", channels=[4, 4], convs=1)
    save_model(tmp_path / "seg" / "model_best", net, arch="segnet", arch_config=net.config,
               kind="segmenter")
    ddp_run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    args = [a if a != "l1+ssim" else "l1+0.5*task" for a in ARGS]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               "-m", "usdenoise", "train", *args, "--segmenter", str(tmp_path / "seg"),
               "--out", str(ddp_run)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[:6000]
    single = fit(TrainConfig(
        data="phantom:16", image_size=16, crop=16, arch="dncnn",
        model={"channels": 4, "depth": 2}, loss="l1+0.5*task", batch_size=4, epochs=2,
        limit=3, device="cpu", progress=False, seed=7, schedule="cosine", clip_grad=1.0,
        segmenter=str(tmp_path / "seg"), out=str(tmp_path / "single"),
    )).parent
    ddp_weights = load_file(str(ddp_run / "model.safetensors"))
    single_weights = load_file(str(single / "model.safetensors"))
    for key, value in ddp_weights.items():
        torch.testing.assert_close(value, single_weights[key], atol=1e-5, rtol=0, msg=key)
    for a, b in zip(_rows(ddp_run), _rows(single), strict=True):
        for key in ("train_loss", "val_loss"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), key
