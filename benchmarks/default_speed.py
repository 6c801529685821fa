"""Speed targets of the default model: per 256² image vs BM3D (1 thread), and an 800 x 540
frame with 2 threads. Medians of repeated calls on this machine; prints them and writes
benchmarks/results/default_speed.json (with the load average: BM3D slows more than the
network under load, so compare ratios from one run).

    python benchmarks/default_speed.py [--variant LABEL=METHOD:KEY=VALUE[;KEY=VALUE]]

`--variant` (repeatable) times another setting on the same 800 x 540 frame, e.g.
`native=default:smooth=3;passes=2;keep_mean=16`.

Both precisions: float32 (the default) and `precision=bfloat16`, timed in alternation in
the same run (this shared machine's speed drifts by ±20 % within minutes), with how far the
bfloat16 output lies from float32's (mean and largest absolute difference, on [0, 1]).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, variant_spec, write_json  # noqa: E402

from usdenoise.data import load_dataset  # noqa: E402
from usdenoise.denoise import make_denoiser  # noqa: E402
from usdenoise.denoise.network import native_bfloat16  # noqa: E402


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternating_medians(calls: dict[str, Callable[[], object]], repeats: int
                        ) -> dict[str, float]:
    """Median seconds of each call, the calls run in turn `repeats` times (drift hits all)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", default=[],
                        metavar="LABEL=METHOD:KEY=VALUE[;KEY=VALUE]",
                        help="another setting timed on the 800 x 540 frame")
    args = parser.parse_args()
    torch.set_num_threads(1)
    image = load_dataset("phantom:2", size=256)[0]["image"][None].float()
    default, bm3d = make_denoiser("default", device="cpu"), make_denoiser("bm3d")
    half = make_denoiser("default", device="cpu", precision="bfloat16")
    native = native_bfloat16(torch.device("cpu"))
    for denoiser in (default, half):
        denoiser.denoise(image)  # warm-up
    small = alternating_medians({"float32": lambda: default.denoise(image),
                                 "bfloat16": lambda: half.denoise(image)}, 7)
    t_default = small["float32"]
    t_bm3d = median_seconds(lambda: bm3d.denoise(image), 3)
    print(f"256² with 1 thread: default {t_default * 1000:.1f} ms, bm3d {t_bm3d * 1000:.0f} ms, "
          f"1/{t_bm3d / t_default:.0f} of BM3D's time (load {os.getloadavg()[0]:.1f}); "
          f"bfloat16 {small['bfloat16'] * 1000:.1f} ms, 1/{t_bm3d / small['bfloat16']:.0f}")
    torch.set_num_threads(2)
    frame = load_dataset("phantom:1", size=(540, 800))[0]["image"][None].float()
    for denoiser in (default, half):
        for _ in range(2):
            denoiser.denoise(frame)  # warm-up
    framed = alternating_medians({"float32": lambda: default.denoise(frame),
                                  "bfloat16": lambda: half.denoise(frame)}, 9)
    t_frame, t_half = framed["float32"], framed["bfloat16"]
    difference = (half.denoise(frame) - default.denoise(frame)).abs()
    print(f"800 x 540 with 2 threads: {t_frame * 1000:.0f} ms ({1 / t_frame:.1f} frames/s); "
          f"bfloat16 {t_half * 1000:.0f} ms ({1 / t_half:.1f} frames/s, "
          f"{'native' if native else 'emulated'}), |bfloat16 - float32| mean "
          f"{float(difference.mean()):.5f}, max {float(difference.max()):.4f}")
    variants = {}
    for spec in map(variant_spec, args.variant):
        denoiser = spec.build()
        denoiser.denoise(frame)  # warm-up
        seconds = median_seconds(lambda d=denoiser: d.denoise(frame), 7)
        variants[spec.label] = {"method": spec.name, "params": spec.params, "seconds": seconds,
                                "frames_per_second": 1 / seconds}
        print(f"  {spec.label}: {seconds * 1000:.0f} ms ({1 / seconds:.1f} frames/s)")
    write_json(RESULTS / "default_speed.json", {
        "command": " ".join(["python", "benchmarks/default_speed.py", *sys.argv[1:]]),
        "machine": machine(),
        "native_bfloat16": native,
        "image_256": {"threads": 1, "default_s": t_default, "bm3d_s": t_bm3d,
                      "fraction_of_bm3d": t_default / t_bm3d, "target": "<= 1/50",
                      "bfloat16_s": small["bfloat16"],
                      "bfloat16_fraction_of_bm3d": small["bfloat16"] / t_bm3d},
        "frame_800x540": {"threads": 2, "seconds": t_frame, "frames_per_second": 1 / t_frame,
                          "target": "<= 0.100 s", "variants": variants,
                          "bfloat16": {"seconds": t_half, "frames_per_second": 1 / t_half,
                                       "mean_abs_difference": float(difference.mean()),
                                       "max_abs_difference": float(difference.max())}}})
    print(f"wrote {RESULTS / 'default_speed.json'}")


if __name__ == "__main__":
    main()
