"""One readable training loop: `fit(config) -> Path` of the best checkpoint.

    clean crops (seeded per sample) ──► task.batch (adds speckle, seeded per epoch)
        ──► model ──► loss ──► Adam (+ cosine, clipping) ──► validation ──► files in RUN/

Every epoch writes, atomically and only on rank 0: `model.safetensors`/`model.json` (the
latest weights), `model_best.*` when validation loss improved, `train_state.safetensors`
(everything `--resume` needs; written last, so it is the commit point), then `metrics.csv`
and `loss_curve.png`, both rebuilt from the history kept in the train state.

Reproducibility: every random draw is seeded from (seed, epoch, sample index) or
(seed, epoch) and not from the order in which things happen, so the same seed gives the same
weights on CPU, a resumed run continues exactly, and a torchrun run with N processes sees
the same global batches, crops and speckle as a single process with the same --batch-size.

What is trained is a `Task` (here: `denoise`); a segmentation task can plug in its own
network, loss, batch preparation and validation figures without touching the loop.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from usdenoise import __version__
from usdenoise.checkpoint import save_model
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import atomic_write, crash_point
from usdenoise.core.progress import make_progress
from usdenoise.core.seeding import SeedPurpose, derive_seed
from usdenoise.data import load_dataset
from usdenoise.data.splits import load_splits, split_or_load
from usdenoise.data.transforms import Compose, RandomCrop, RandomFlip
from usdenoise.reporting.html_plots import curves
from usdenoise.training.config import TrainConfig, config_differences
from usdenoise.training.distributed import (
    World,
    barrier,
    broadcast_flag,
    start,
    stop,
    sum_over_processes,
)
from usdenoise.training.state import (
    STATE_FILE,
    capture_rng,
    clean_run_folder,
    load_train_state,
    restore_rng,
    save_train_state,
)
from usdenoise.training.tasks import TASKS, DenoiseTask

METRICS_FILE = "metrics.csv"
CURVE_FILE = "loss_curve.png"
MODEL_STEM = "model"
BEST_STEM = "model_best"




# ---------------------------------------------------------------------------------------------
# data


class _Cached(Dataset):
    """Decodes each image once and keeps it: file decoding dominates small-model epochs."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.samples: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index not in self.samples:
            self.samples[index] = self.base[index]
        return self.samples[index]


class _Crops(Dataset):
    """Samples `indices` of a data set through a transform seeded by (seed, epoch, index)."""

    def __init__(self, base: Any, indices: list[int], transform: Any, keys: tuple[str, ...],
                 seed: int, *, fixed: bool) -> None:
        self.base, self.indices, self.transform, self.keys = base, indices, transform, keys
        self.seed, self.fixed, self.epoch = seed, fixed, 0

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        parts = ((self.seed, SeedPurpose.VALIDATION_CROP, index) if self.fixed
                 else (self.seed, SeedPurpose.TRAIN_CROP, self.epoch, index))
        sample = self.transform(self.base[index], generator=torch.Generator().manual_seed(
            derive_seed(*parts)))
        return {**{key: sample[key] for key in self.keys}, "index": index}


def _loaders(config: TrainConfig, task: DenoiseTask, world: World, run: Path):

    dataset = load_dataset(config.data, size=config.image_size)
    splits_path = run / "splits.json"
    if world.is_main:
        splits = split_or_load(splits_path, dataset, seed=config.seed)
    barrier(world)
    if not world.is_main:
        splits = load_splits(splits_path, dataset=dataset)
    train_ids, val_ids = list(splits["train"]), list(splits["val"])
    if len(train_ids) < config.batch_size:
        raise UsdenoiseError(
            f"{config.data}: the train split has {len(train_ids)} images, fewer than "
            f"--batch-size {config.batch_size}"
        )
    if not val_ids:
        raise UsdenoiseError(f"{config.data}: the validation split is empty (too few subjects)")
    dataset = task.prepare_dataset(dataset, train_ids + val_ids)
    cuda = world.device.type == "cuda"
    common: dict[str, Any] = dict(num_workers=config.workers, pin_memory=cuda,
                                  persistent_workers=False,
                                  batch_size=config.batch_size // world.size)
    if config.cache:
        dataset = _Cached(dataset)
    train_set = _Crops(dataset, train_ids, Compose([RandomCrop(config.crop), RandomFlip()]),
                       task.keys, config.seed, fixed=False)
    sampler: DistributedSampler[dict[str, Any]] = DistributedSampler(
        train_set, num_replicas=world.size, rank=world.rank, shuffle=True, seed=config.seed,
        drop_last=True)
    train = DataLoader(train_set, sampler=sampler, drop_last=True, **common)
    # validation: a fixed crop per image; each process takes every world.size-th image
    val_set = _Crops(dataset, val_ids[world.rank :: world.size], RandomCrop(config.crop),
                     task.keys, config.seed, fixed=True)
    val = DataLoader(val_set, shuffle=False, **common)
    return train, val, sampler, {"train": len(train_ids), "val": len(val_ids)}


# ---------------------------------------------------------------------------------------------
# the loop


@dataclass
class _Progress:
    epoch: int = 0  # epochs completed
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0


def fit(config: TrainConfig, *, task: Any = None) -> Path:
    """Train `config.task`; returns the best checkpoint, `RUN/model_best.safetensors`.

    `task`: a task object built by the caller (e.g. a `SegmentTask` whose input images the
    study already processed) instead of `TASKS[config.task](config)`.
    """
    world = start(config.device)
    try:
        best = _fit(config, world, task)
    except torch.OutOfMemoryError:
        stop(world, clean=False)
        raise UsdenoiseError(
            f"out of GPU memory on {world.device} with --batch-size {config.batch_size} and "
            f"--crop {config.crop}: try a smaller --batch-size or --crop"
        ) from None
    except BaseException:
        stop(world, clean=False)
        raise
    stop(world)
    return best


def _fit(config: TrainConfig, world: World, task: Any = None) -> Path:
    run = Path(config.resume or config.out)
    if config.task not in TASKS:
        raise UsdenoiseError(f"task {config.task!r} is not one of {sorted(TASKS)}")
    if config.batch_size % world.size:
        raise UsdenoiseError(f"--batch-size {config.batch_size} is not divisible by the "
                             f"{world.size} processes")
    saved = _check_resume(config, run)
    if world.is_main:
        clean_run_folder(run)  # temp files a killed run left behind
    if saved is not None and _finished(config, _Progress(**saved["progress"])):
        return run / f"{BEST_STEM}.safetensors"
    device = world.device
    amp = config.amp if config.amp is not None else device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    if task is None:
        task = TASKS[config.task](config)
    torch.manual_seed(config.seed)
    model = task.build_model().to(device)  # before the optimizer, so its state follows
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = task.build_loss().to(device)
    if world.is_main:
        run.mkdir(parents=True, exist_ok=True)
    train_loader, val_loader, sampler, sizes = _loaders(config, task, world, run)

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: _lr_factor(config, e))
    noise_gen = torch.Generator(device=device)
    progress, history = _Progress(), []
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        restore_rng(saved["rng"], {"noise": noise_gen})
        progress = _Progress(**saved["progress"])
        history = saved["history"]

    net: nn.Module = model
    if world.distributed:
        if device.type == "cuda" and config.sync_batchnorm:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        # a module compiles to a module (OptimizedModule); the stubs say only Callable
        net = cast(nn.Module, torch.compile(net))

    def forward(x: torch.Tensor) -> torch.Tensor:
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            return net(x)


    steps = len(train_loader) if config.limit is None else min(len(train_loader), config.limit)
    bar = make_progress(enabled=config.progress if world.is_main else False)
    with bar:
        task_id = bar.add_task("train", total=steps * (config.epochs - progress.epoch), status="")
        for epoch in range(progress.epoch, config.epochs):
            # per-epoch seeds: dropout (global RNG, differs per process), speckle, crops, order;
            # numpy's and python's global RNGs too, for code that draws from them
            epoch_seed = derive_seed(config.seed, SeedPurpose.WEIGHTS, epoch, world.rank)
            torch.manual_seed(epoch_seed)
            np.random.seed(epoch_seed % 2**32)
            random.seed(epoch_seed)
            noise_gen.manual_seed(derive_seed(config.seed, SeedPurpose.TRAIN_NOISE, epoch))
            sampler.set_epoch(epoch)
            train_loader.dataset.epoch = epoch
            started = time.perf_counter()
            net.train()
            total, count = torch.zeros((), device=device, dtype=torch.float64), 0
            for step, batch in enumerate(itertools.islice(train_loader, steps)):
                x, target = task.batch(batch, noise_gen, world)
                if hasattr(task, "loss_fn"):  # e.g. self-supervised: several forward passes
                    loss = task.loss_fn(forward, x, target)
                else:
                    loss = loss_fn(forward(x).float(), target, **task.loss_inputs(batch, device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip_grad is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
                optimizer.step()
                crash_point("step")  # test hook: USDENOISE_CRASH_AT=step@N kills the process
                total += loss.detach() * x.shape[0]
                count += x.shape[0]
                if step % 10 == 0 or step == steps - 1:
                    status = f"epoch {epoch + 1}/{config.epochs} loss {loss.item():.4f}"
                    bar.update(task_id, status=status)
                bar.advance(task_id)
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            train_sum, train_count = sum_over_processes([total.item(), count], world)
            seconds = time.perf_counter() - started
            row = {"epoch": epoch + 1, "train_loss": train_sum / train_count,
                   **_validate(net, forward, task, loss_fn, val_loader, config, world),
                   "lr": lr, "seconds": round(seconds, 3),
                   "crops_per_second": round(train_count / seconds, 2)}
            history.append(row)
            improved = progress.best_epoch == 0 or row["val_loss"] < progress.best_val
            if improved:
                progress.best_val, progress.best_epoch, progress.bad_epochs = (
                    row["val_loss"], epoch + 1, 0)
            else:
                progress.bad_epochs += 1
            progress.epoch = epoch + 1
            if world.is_main:
                _write_epoch(run, model, config, task, sizes, row, history, progress, improved,
                             optimizer, scheduler, noise_gen)
            barrier(world)
            patience = config.patience
            if broadcast_flag(patience is not None and progress.bad_epochs >= patience, world):
                if world.is_main:
                    bar.console.print(f"early stop after epoch {epoch + 1}: no better validation "
                                      f"loss for {patience} epochs")
                break
    return run / f"{BEST_STEM}.safetensors"


def _finished(config: TrainConfig, progress: _Progress) -> bool:
    stopped = config.patience is not None and progress.bad_epochs >= config.patience
    return stopped or progress.epoch >= config.epochs


def _lr_factor(config: TrainConfig, epoch: int) -> float:
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch, config.epochs) / config.epochs))
    return 1.0


@torch.no_grad()
def _validate(net, forward, task, loss_fn, loader, config, world) -> dict[str, float]:
    net.eval()
    sums: dict[str, float] = {"val_loss": 0.0}
    count = 0
    limit = config.limit if config.limit is not None else len(loader)
    for batch in itertools.islice(loader, limit):
        x, target = task.validation_batch(batch, world.device)
        # a task whose network runs differently at inference says how (nb2nb: sub-lattices)
        output = (task.predict(forward, x) if hasattr(task, "predict") else forward(x)).float()
        extra = task.loss_inputs(batch, world.device)
        loss = (task.validation_loss_fn(forward, x, target)
                if hasattr(task, "validation_loss_fn") else loss_fn(output, target, **extra))
        sums["val_loss"] += loss.item() * x.shape[0]
        for name, values in task.measure(output, target).items():
            sums[f"val_{name}"] = sums.get(f"val_{name}", 0.0) + values.double().sum().item()
        count += x.shape[0]
    # every process must contribute the same keys, even one with no validation images
    names = ["val_loss", *(f"val_{n}" for n in task.figures)]
    totals = sum_over_processes([sums.get(n, 0.0) for n in names] + [count], world)
    return {n: totals[i] / max(totals[-1], 1) for i, n in enumerate(names)}


def _check_resume(config: TrainConfig, run: Path) -> dict[str, Any] | None:
    state_path = run / STATE_FILE
    if config.resume is None:
        if state_path.exists():
            raise UsdenoiseError(
                f"{run}: already holds a training run; continue it with --resume {run} "
                "or choose another --out"
            )
        return None
    saved = load_train_state(state_path)
    changed = config_differences(saved["config"], config)
    if changed:
        raise UsdenoiseError(
            f"--resume {run}: settings differ from that run's ({'; '.join(changed)})"
        )
    return saved


def _write_epoch(run, model, config, task, sizes, row, history, progress, improved,
                 optimizer, scheduler, noise_gen) -> None:
    """Checkpoint, best copy, train state (commit point), metrics.csv, loss curve."""

    arch_config = dict(getattr(model, "config", {}))
    meta = {"kind": task.checkpoint_kind, "task": task.name, "config": config.to_dict(),
            "epoch": row["epoch"], "metrics": row, "version": __version__,
            **task.checkpoint_meta(),
            "data": {"spec": config.data, "splits": "splits.json", "images": sizes,
                     "noise": config.noise, "crop": config.crop}}
    save_model(run / f"{MODEL_STEM}.safetensors", model, arch=config.arch,
               arch_config=arch_config, meta=meta, kind=task.checkpoint_kind, metrics=row)
    if improved:
        save_model(run / f"{BEST_STEM}.safetensors", model, arch=config.arch,
                   arch_config=arch_config, meta={**meta, "best": True},
                   kind=task.checkpoint_kind, metrics=row)
    save_train_state(run / STATE_FILE, {
        "config": config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": capture_rng({"noise": noise_gen}),
        "progress": vars(progress).copy(),
        "history": history,
    })
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    with atomic_write(run / METRICS_FILE) as tmp:
        Path(tmp).write_text(text.getvalue())
    epochs = [r["epoch"] for r in history]
    png = curves(epochs, {"train": [r["train_loss"] for r in history],
                          "validation": [r["val_loss"] for r in history]},
                 xlabel="epoch", ylabel=f"loss ({config.loss})",
                 title=f"{config.arch} on {config.data}", integer_x=True)
    if png is not None:
        with atomic_write(run / CURVE_FILE) as tmp:
            Path(tmp).write_bytes(png)


