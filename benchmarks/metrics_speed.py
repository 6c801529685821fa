"""Time every metric in usdenoise.metrics.METRICS on one batch (default 64 x 1 x 256 x 256),
and `head_background_rois` (the regions of gCNR and CNR) on its masks.

    .venv/bin/python benchmarks/metrics_speed.py [--batch 64] [--size 256] [--device cpu]
        [--threads N] [--repeats 5] [--out benchmarks/results/metrics_speed.json]

Prints a table (best and median wall-clock seconds of the repeats, images/s, and the CPU
seconds the process used in the best repeat, summed over threads: on a machine shared with
other jobs wall time inflates, CPU time much less) and writes the same figures as JSON,
with the machine's load average. Target (issue 3): SSIM on a 64 x 256² batch in <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from usdenoise.metrics import METRICS, box_mask, head_background_rois

SSIM_TARGET_S = 1.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _inputs(batch: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    head = ((yy - size / 2) / (0.3 * size)) ** 2 + ((xx - size / 2) / (0.38 * size)) ** 2 <= 1
    mask = head.long().expand(batch, size, size)
    clean = (0.2 + 0.5 * head.float()).expand(batch, 1, size, size).clone()
    clean += 0.05 * torch.rand(batch, 1, size, size, generator=g)
    gamma = torch._standard_gamma(torch.full(clean.shape, 4.0), generator=g) / 4.0
    noisy = (clean * gamma).clamp(0, 1)
    denoised = torch.nn.functional.avg_pool2d(noisy, 5, stride=1, padding=2)
    roi_a, roi_b = head_background_rois(mask)
    return {
        "clean": clean.to(device),
        "noisy": noisy.to(device),
        "denoised": denoised.to(device),
        "roi_a": roi_a.to(device),
        "roi_b": roi_b.to(device),
        "box": box_mask((size, size), size // 4, size // 4, size // 2, size // 2).to(device),
        "mask": mask.to(device),
    }


def _call(name: str, t: dict[str, torch.Tensor]) -> torch.Tensor:
    metric = METRICS[name]
    args = {
        "x": t["denoised"],
        "ref": t["clean"],
        "roi": t["roi_a"],
        "roi_a": t["roi_a"],
        "roi_b": t["roi_b"],
        "noisy": t["noisy"],
        "denoised": t["denoised"],
    }
    return metric(*(args[i] for i in metric.inputs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/metrics_speed.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t = _inputs(args.batch, args.size, device)

    rows = []
    print(f"{args.batch} x 1 x {args.size} x {args.size} on {device} "
          f"({torch.get_num_threads()} CPU threads, torch {torch.__version__})")
    print(f"load average before: {_load()}")
    print(f"{'metric':<8} {'best s':>8} {'median s':>9} {'cpu s':>7} {'images/s':>9}  mean value")
    for name in METRICS:
        with torch.no_grad():
            value = _call(name, t)  # warm-up
            _sync(device)
            times, cpu = [], []
            for _ in range(args.repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                _call(name, t)
                _sync(device)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
        best, median = min(times), statistics.median(times)
        best_cpu = cpu[times.index(best)]
        mean_value = value.float().mean().item()
        rows.append({
            "metric": name,
            "best_s": best,
            "median_s": median,
            "cpu_s_of_best": best_cpu,
            "images_per_s": args.batch / best,
            "mean_value": mean_value,
        })
        print(f"{name:<8} {best:8.3f} {median:9.3f} {best_cpu:7.3f} {args.batch / best:9.0f}"
              f"  {mean_value:.4f}")

    # the ROIs gCNR/CNR are measured in: a dilation by 10 % of the side (54 px at 540)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        head_background_rois(t["mask"])
        _sync(device)
        times.append(time.perf_counter() - start)
    rows.append({"metric": "head_background_rois", "best_s": min(times),
                 "median_s": statistics.median(times), "images_per_s": args.batch / min(times)})
    print(f"{'rois':<8} {min(times):8.3f} {statistics.median(times):9.3f} {'':>7} "
          f"{args.batch / min(times):9.0f}  (head_background_rois)")

    ssim_row = next(r for r in rows if r["metric"] == "ssim")
    ok = ssim_row["best_s"] <= SSIM_TARGET_S
    print(f"SSIM target <= {SSIM_TARGET_S:.1f} s: {'met' if ok else 'MISSED'} "
          f"({ssim_row['best_s']:.3f} s best, {ssim_row['median_s']:.3f} s median)")

    result = {
        "batch": args.batch,
        "size": args.size,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "repeats": args.repeats,
        "load_average_after": _load(),
        "ssim_target_s": SSIM_TARGET_S,
        "ssim_target_met": ok,
        "metrics": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
