"""Speed of the transform-domain and non-local filters per 256 x 256 image, and the
overhead of the `bm3d` wrapper over the bm3d package's own call.

    .venv/bin/python benchmarks/classic_speed_nonlocal.py [--repeats R] [--threads N]

Image: scikit-image's `camera` resized to 256^2 with multiplicative Gaussian speckle
(y = x + x n, n ~ N(0, 0.05), seed 0). Each filter runs once to warm up, then `repeats`
times on that one image; wall time (median and fastest) and process CPU time (median) are
reported. The machine is shared, so the fastest run is the least disturbed one.

BM3D overhead: raw `bm3d.bm3d` on exactly the array the wrapper hands to it (the log
image for route=log, the intensities for route=plain) with the same sigma and profile,
interleaved with the wrapper call (raw, wrapper, raw, wrapper, ...) so that both see the
same load; overhead = wrapper / raw - 1 on the medians and on the fastest runs.
Targets (issue 4): obnlm <= 1 s; bm3d overhead <= 5 %.
Prints a table and writes benchmarks/results/classic_speed_nonlocal.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from usdenoise.denoise.classic import CLASSIC
from usdenoise.denoise.classic.bm3d import LOG_OFFSET, estimate_noise_sigma

FILTERS = ["bilateral", "tv", "wavelet", "nlm", "obnlm", "bm3d"]
TARGETS_S = {"obnlm": 1.0}
SIZE = 256


def speckled_camera() -> tuple[np.ndarray, np.ndarray]:
    from skimage import data, transform

    x = transform.resize(data.camera() / 255.0, (SIZE, SIZE), anti_aliasing=True)
    n = np.random.default_rng(0).normal(0.0, np.sqrt(0.05), x.shape)
    return x, np.clip(x + x * n, 0.0, 1.0)


def clock(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def psnr(a: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - ref) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "classic_speed_nonlocal.json",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clean, noisy = speckled_camera()
    x = torch.from_numpy(noisy).float()[None, None]
    load_before = os.getloadavg()[0]
    rows = []
    print(f"noisy PSNR {psnr(noisy, clean):.2f} dB")
    print(f"{'filter':<11}{'median s':>9}{'min s':>8}{'cpu s':>8}{'PSNR dB':>9}{'target':>8}  ok")
    for name in FILTERS:
        den = CLASSIC[name]()
        out = den.denoise(x)  # warm-up
        runs = [clock(lambda den=den: den.denoise(x)) for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        fastest = min(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        target = TARGETS_S.get(name)
        ok = None if target is None else wall <= target
        quality = psnr(out[0, 0].double().numpy(), clean)
        rows.append(
            {
                "filter": name,
                "params": den.config,
                "median_s": round(wall, 4),
                "min_s": round(fastest, 4),
                "median_cpu_s": round(cpu, 4),
                "psnr_db": round(quality, 2),
                "target_s": target,
                "meets_target": ok,
            }
        )
        verdict = "" if ok is None else ("yes" if ok else "NO")
        print(
            f"{name:<11}{wall:>9.3f}{fastest:>8.3f}{cpu:>8.3f}{quality:>9.2f}"
            f"{'' if target is None else target:>8}  {verdict}"
        )

    import bm3d

    overhead = []
    print(
        f"\n{'bm3d route':<11}{'raw med':>9}{'wrap med':>9}{'raw min':>9}{'wrap min':>9}"
        f"{'ovh med':>9}{'ovh min':>9}"
    )
    for route in ("log", "plain"):
        den = CLASSIC["bm3d"](route=route)
        z = np.log(noisy + LOG_OFFSET) if route == "log" else noisy.copy()
        z = z.astype(np.float32).astype(np.float64)  # what the wrapper sees (float32 tensor)
        sigma = estimate_noise_sigma(z)
        den.denoise(x), bm3d.bm3d(z, sigma, profile="np")  # warm-up
        raw, wrapped = [], []
        for _ in range(args.repeats):
            raw.append(clock(lambda z=z, sigma=sigma: bm3d.bm3d(z, sigma, profile="np"))[0])
            wrapped.append(clock(lambda den=den: den.denoise(x))[0])
        r_med, w_med = statistics.median(raw), statistics.median(wrapped)
        r_min, w_min = min(raw), min(wrapped)
        row = {
            "route": route,
            "raw_median_s": round(r_med, 4),
            "wrapper_median_s": round(w_med, 4),
            "raw_min_s": round(r_min, 4),
            "wrapper_min_s": round(w_min, 4),
            "overhead_median": round(w_med / r_med - 1, 4),
            "overhead_min": round(w_min / r_min - 1, 4),
            "target_overhead": 0.05,
        }
        overhead.append(row)
        print(
            f"{route:<11}{r_med:>9.3f}{w_med:>9.3f}{r_min:>9.3f}{w_min:>9.3f}"
            f"{row['overhead_median']:>9.1%}{row['overhead_min']:>9.1%}"
        )
    result = {
        "benchmark": "classic_speed_nonlocal",
        "image": f"camera {SIZE}x{SIZE}, y = x + x n, n ~ N(0, 0.05), seed 0",
        "noisy_psnr_db": round(psnr(noisy, clean), 2),
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "bm3d": getattr(bm3d, "__version__", "unknown"),
        "machine": platform.processor() or platform.machine(),
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "results": rows,
        "bm3d_overhead": overhead,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.out)
    print(
        f"wrote {args.out} (torch threads {torch.get_num_threads()}, 1-min load "
        f"{load_before:.2f} -> {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
