"""Speed of the local-statistics and diffusion filters, per 256 x 256 image.

    .venv/bin/python benchmarks/classic_speed_local.py [--threads N] [--repeats R]

A batch of 8 speckled 256^2 images is filtered once to warm up, then `repeats` times; the
median and the fastest wall time of a batch, divided by 8, are reported (the machine is
shared: the fastest run is the least disturbed one; the target check uses the median).
Prints a table and writes benchmarks/results/classic_speed_local.json.
Targets (issue 4): lee/frost/kuan <= 5 ms,
srad (100 iterations) <= 50 ms per image.
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

from usdenoise.denoise.classic import CLASSIC

FILTERS = ["mean", "median", "gaussian", "lee", "kuan", "enhanced_lee", "frost", "srad",
           "perona_malik"]
TARGETS_MS = {"lee": 5.0, "kuan": 5.0, "frost": 5.0, "srad": 50.0}
BATCH, SIZE = 8, 256


def speckled_batch(seed: int = 0) -> torch.Tensor:
    """Blocky tissue-like images (disc + gradient + stripes) with gamma speckle, cv 0.3."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE),
                            indexing="ij")
    clean = 0.3 + 0.2 * (xx + 1) / 2 + 0.3 * ((xx**2 + yy**2) < 0.3).float()
    clean = clean + 0.1 * (torch.sin(8 * yy) > 0.5).float()
    clean = clean.clamp(0, 1).expand(BATCH, 1, SIZE, SIZE)
    looks = torch.full(clean.shape, 1 / 0.3**2, dtype=torch.float64)
    noise = torch._standard_gamma(looks, g) / looks
    return (clean * noise.float()).clamp(0, 1)


def time_filter(name: str, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    den = CLASSIC[name]()
    den.denoise(x)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        den.denoise(x)
        times.append(time.perf_counter() - t0)
    scale = 1000.0 / x.shape[0]
    return statistics.median(times) * scale, min(times) * scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parent / "results" / "classic_speed_local.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = speckled_batch()
    rows = []
    print(f"{'filter':<14}{'params':<52}{'median ms':>10}{'min ms':>8}{'target':>8}  ok")
    for name in FILTERS:
        ms, fastest = time_filter(name, x, args.repeats)
        target = TARGETS_MS.get(name)
        ok = None if target is None else ms <= target
        params = repr(CLASSIC[name]()).split("(", 1)[1][:-1]
        rows.append({"filter": name, "params": params, "ms_per_image": round(ms, 3),
                     "min_ms_per_image": round(fastest, 3),
                     "target_ms": target, "meets_target": ok})
        print(f"{name:<14}{params[:50]:<52}{ms:>10.2f}{fastest:>8.2f}"
              f"{'' if target is None else target:>8}"
              f"  {'' if ok is None else ('yes' if ok else 'NO')}")
    result = {
        "benchmark": "classic_speed_local",
        "batch": BATCH, "size": SIZE, "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "load_average_1min": os.getloadavg()[0],
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.out)
    print(f"wrote {args.out} (torch threads {torch.get_num_threads()}, "
          f"1-min load {result['load_average_1min']:.2f})")


if __name__ == "__main__":
    main()
