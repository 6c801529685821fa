"""Speed targets of the default model: per 256² image vs BM3D (1 thread), and an 800 x 540
frame with 2 threads. Medians of repeated calls on this machine; prints them and writes
benchmarks/results/default_speed.json (with the load average: BM3D slows more than the
network under load, so compare ratios from one run).

    python benchmarks/default_speed.py [--variant LABEL=METHOD:KEY=VALUE[;KEY=VALUE]]

`--variant` (repeatable) times another setting on the same 800 x 540 frame, e.g.
`native=default:smooth=3;passes=2;keep_mean=16`.
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


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", default=[],
                        metavar="LABEL=METHOD:KEY=VALUE[;KEY=VALUE]",
                        help="another setting timed on the 800 x 540 frame")
    args = parser.parse_args()
    torch.set_num_threads(1)
    image = load_dataset("phantom:2", size=256)[0]["image"][None].float()
    default, bm3d = make_denoiser("default", device="cpu"), make_denoiser("bm3d")
    default.denoise(image)  # warm-up
    t_default = median_seconds(lambda: default.denoise(image), 7)
    t_bm3d = median_seconds(lambda: bm3d.denoise(image), 3)
    print(f"256² with 1 thread: default {t_default * 1000:.1f} ms, bm3d {t_bm3d * 1000:.0f} ms, "
          f"1/{t_bm3d / t_default:.0f} of BM3D's time (load {os.getloadavg()[0]:.1f})")
    torch.set_num_threads(2)
    frame = load_dataset("phantom:1", size=(540, 800))[0]["image"][None].float()
    default.denoise(frame)  # warm-up
    t_frame = median_seconds(lambda: default.denoise(frame), 7)
    print(f"800 x 540 with 2 threads: {t_frame * 1000:.0f} ms ({1 / t_frame:.1f} frames/s)")
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
        "image_256": {"threads": 1, "default_s": t_default, "bm3d_s": t_bm3d,
                      "fraction_of_bm3d": t_default / t_bm3d, "target": "<= 1/50"},
        "frame_800x540": {"threads": 2, "seconds": t_frame, "frames_per_second": 1 / t_frame,
                          "target": "<= 0.100 s", "variants": variants}})
    print(f"wrote {RESULTS / 'default_speed.json'}")


if __name__ == "__main__":
    main()
