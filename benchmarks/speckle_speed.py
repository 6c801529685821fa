"""Images per second of every speckle model on CPU batches of 256x256 images.

    .venv/bin/python benchmarks/speckle_speed.py [--batch 64] [--size 256] [--repeats 5]
                                                 [--threads N] [--out benchmarks/results/...]

Prints a table and writes JSON (benchmarks/results/ is git-ignored). Targets from issue 3:
rayleigh, gamma and gaussian >= 500 images/s, physics >= 50 images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from usdenoise.noise.speckle import make_noise

SPECS = {
    "gaussian:0.04": 500,
    "uniform:0.04": None,
    "rayleigh:0.25": 500,
    "rayleigh_biased:0.25": None,
    "gamma:4": 500,
    "gamma:1-16": 500,
    "logcompressed:0.1": None,
    "physics:0.1": 50,
    "rayleigh:0.1-0.75": 500,
    "mixture:rayleigh:0.1-0.75|gamma:1-16|physics:0.05-0.2": None,
}


def bench(spec: str, x: torch.Tensor, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds per batch (CPU time shows what a shared, loaded
    machine hides: wall time there includes waiting for a core)."""
    model = make_noise(spec)
    generator = torch.Generator().manual_seed(0)
    model(x, generator=generator)  # warm-up (FFT plans, transfer-function cache)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        model(x, generator=generator)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speckle_speed.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x = torch.rand(args.batch, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
    rows = []
    print(f"batch {args.batch} x 1 x {args.size} x {args.size}, float32, CPU, "
          f"{torch.get_num_threads()} torch threads, median of {args.repeats}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is not None:
        print(f"load average (1 min) at start: {load:.2f} on {os.cpu_count()} CPUs")
    print(f"{'noise':<54} {'ms/batch':>8} {'images/s':>9} {'img/cpu-s':>9} {'target':>6}  ok")
    for spec, target in SPECS.items():
        wall, cpu = bench(spec, x, args.repeats)
        median, median_cpu = statistics.median(wall), statistics.median(cpu)
        rate = args.batch / median
        ok = None if target is None else rate >= target
        rows.append({
            "noise": spec, "ms_per_batch": 1000 * median, "images_per_s": rate,
            "images_per_cpu_s": args.batch / median_cpu,
            "target_images_per_s": target, "meets_target": ok, "wall_s": wall, "cpu_s": cpu,
        })
        mark = "" if ok is None else ("yes" if ok else "NO")
        shown = "" if target is None else str(target)
        print(f"{spec:<54} {1000 * median:8.1f} {rate:9.0f} {args.batch / median_cpu:9.0f} "
              f"{shown:>6}  {mark}")

    record = {
        "benchmark": "speckle_speed",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "batch": args.batch, "size": args.size, "repeats": args.repeats, "dtype": "float32",
        "device": "cpu", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_average_1min": load, "machine": platform.machine(),
        "processor": platform.processor(), "python": platform.python_version(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
