"""Does a segmenter-consistency term let a despeckler remove more native speckle without
costing a frozen segmenter Dice?

The shipped default reaches about −30 % speckle index on original HC18 scans only with
`smooth=3 passes=3 keep_mean=16`, and the frozen segmenter's Dice drop then exceeds the
0.003 target. This experiment fine-tunes the shipped network on the train split's original
scans (whole frames, nothing added) towards a strong teacher, the default itself at
`--teacher` settings, with an optional second term that keeps what a *frozen segmenter*
makes of the scan:

    loss = L1(f(x), teacher(x)) + λ · mean((softmax S(↓f(x)) − softmax S(↓x))²)

`S` is a segmenter trained on original scans (`--loss-segmenter`, e.g. a U-Net); ↓ is the
area resize to its input size. The benchmark's frozen segmenter (`real_scans.py
--segmenter`) should be a *different* one (e.g. the SegNet snapshot), so the gain, if any,
is not fitted to the judge. λ = 0 is the control: the same distillation without the term.

    OMP_NUM_THREADS=1 python benchmarks/task_consistent_native.py teacher --part 0/2
    OMP_NUM_THREADS=1 python benchmarks/task_consistent_native.py teacher --part 1/2
    OMP_NUM_THREADS=1 python benchmarks/task_consistent_native.py train --lam 0 --out runs/tc-l0
    OMP_NUM_THREADS=1 python benchmarks/task_consistent_native.py train --lam 10 \\
        --out runs/tc-l10
    OMP_NUM_THREADS=1 python benchmarks/real_scans.py --segmenter runs/seg-snapshot \\
        --limit 0 --slow-limit 0 --methods default \\
        --variant "teacher=default:smooth=3;passes=5;keep_mean=16" \\
        --variant "l0=network:checkpoint=runs/tc-l0;device=cpu" \\
        --variant "l10=network:checkpoint=runs/tc-l10;device=cpu" --name task_consistent

Teacher outputs are cached in `--cache` (run outputs, not committed); the trained networks
are ordinary denoiser checkpoints (`network:checkpoint=RUN`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import HC18, write_json

from usdenoise.checkpoint import load_model, load_segmenter, save_model, segmenter_input_size
from usdenoise.data import load_dataset
from usdenoise.data.transforms import as_size
from usdenoise.denoise import make_denoiser
from usdenoise.denoise.network import default_weights_path
from usdenoise.denoise.registry import parse_params
from usdenoise.losses import frozen_segmenter
from usdenoise.noise.adaptive_level import adaptive_level_map
from usdenoise.noise.level import estimate_level

TEACHER = "smooth=3;passes=5;keep_mean=16"
#: input size for a segmenter trained at its images' own size (none recorded in the sidecar)
DEFAULT_SEGMENTER_SIZE = 128


def train_indices(splits: str, limit: int) -> list[int]:
    """The train split of a segmenter run's `splits.json` (subject split, seed 0): the
    students never see the test scans the benchmark judges them on."""
    if not Path(splits).is_file():
        sys.exit(f"{splits}: not found; train the judging segmenter first (--splits names "
                 "its splits.json)")
    indices = json.loads(Path(splits).read_text())["splits"]["train"]["indices"]
    return list(indices)[:limit] if limit else list(indices)


def make_teacher(args: argparse.Namespace) -> None:
    """Teacher outputs of this part's share of the training scans, one .pt file each."""
    torch.set_num_threads(args.threads)
    k, n = (int(v) for v in args.part.split("/"))
    dataset = load_dataset(args.data)
    settings = parse_params([item for item in args.teacher.split(";") if item])
    teacher = make_denoiser("default", device="cpu", **settings)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    mine = train_indices(args.splits, args.limit)[k::n]
    started = time.perf_counter()
    for j, index in enumerate(mine):
        path = cache / f"{index}.pt"
        if path.exists():
            continue
        x = dataset[index]["image"][None]
        with torch.no_grad():
            y = teacher(x)[0].to(torch.float16)
        torch.save(y, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        if j % 20 == 0:
            print(f"teacher {k}/{n}: {j + 1}/{len(mine)} "
                  f"{time.perf_counter() - started:.0f} s", flush=True)


def level_input(x: torch.Tensor, trained: tuple[float, float]) -> torch.Tensor:
    """`[x, constant level map]` as the `default` denoiser builds it at smooth=0."""
    level = estimate_level(x).clamp(*trained)
    return torch.cat([x, adaptive_level_map(level, x, 0.0, low=trained[0], high=trained[1])], 1)


def segment_probs(segmenter: torch.nn.Module, x: torch.Tensor, size: tuple[int, int]
                  ) -> torch.Tensor:
    return segmenter(F.interpolate(x, size=size, mode="area")).float().softmax(1)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    net, sidecar = load_model(default_weights_path(), kind="denoiser")
    net.eval()  # BatchNorm keeps the shipped running statistics; convolutions train
    for p in net.parameters():
        p.requires_grad_(True)
    trained = tuple(sidecar["meta"]["level"]["range"])
    segmenter, seg_sidecar = load_segmenter(args.loss_segmenter, option="--loss-segmenter")
    frozen_segmenter(segmenter, loss="consistency")
    size = as_size(segmenter_input_size(seg_sidecar) or DEFAULT_SEGMENTER_SIZE)
    dataset = load_dataset(args.data)
    cache = Path(args.cache)
    indices = [i for i in train_indices(args.splits, args.limit) if (cache / f"{i}.pt").exists()]
    if not indices:
        sys.exit(f"no teacher outputs in {cache}: run the teacher step first")
    images = {i: dataset[i]["image"] for i in indices}
    targets = {i: torch.load(cache / f"{i}.pt").float() for i in indices}
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * len(indices)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    history = []
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = indices[:]
        rng.shuffle(order)
        sums = {"l1": 0.0, "consistency": 0.0}
        for index in order:
            x, t = images[index][None], targets[index][None]
            if rng.random() < 0.5:  # left-right flip: scans are not mirror-symmetric
                x, t = x.flip(-1), t.flip(-1)
            y = net(level_input(x, trained))
            l1 = F.l1_loss(y, t)
            loss = l1
            if args.lam > 0:
                with torch.no_grad():
                    p_in = segment_probs(segmenter, x, size)
                cons = F.mse_loss(segment_probs(segmenter, y.clamp(0, 1), size), p_in)
                loss = loss + args.lam * cons
                sums["consistency"] += float(cons.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sums["l1"] += float(l1.detach())
        row = {"epoch": epoch, **{k: v / len(order) for k, v in sums.items()},
               "seconds": round(time.perf_counter() - started, 1)}
        history.append(row)
        print(json.dumps(row), flush=True)
    meta = dict(sidecar["meta"])
    meta.update({"how_trained": " ".join(["python", *sys.argv]),
                 "task_consistent": {"teacher": args.teacher, "lam": args.lam,
                                     "loss_segmenter": args.loss_segmenter,
                                     "images": len(indices), "epochs": args.epochs,
                                     "history": history}})
    save_model(Path(args.out) / "model", net, arch=sidecar["arch"],
               arch_config=sidecar["config"], meta=meta, metrics=history[-1])
    write_json(Path(args.out) / "history.json", {"history": history, "argv": sys.argv})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("teacher", "train"))
    parser.add_argument("--data", default=HC18)
    parser.add_argument("--splits", default="runs/seg-snapshot/splits.json")
    parser.add_argument("--teacher", default=TEACHER)
    parser.add_argument("--cache", default="runs/tc-teacher")
    parser.add_argument("--limit", type=int, default=240, help="training scans (0: all)")
    parser.add_argument("--part", default="0/1", help="K/N: this share of the teacher step")
    parser.add_argument("--loss-segmenter", default="runs/seg-unet128")
    parser.add_argument("--lam", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/tc")
    args = parser.parse_args()
    (make_teacher if args.step == "teacher" else train)(args)


if __name__ == "__main__":
    main()
