"""Time of one 800 x 540 ultrasound frame through the shipped default model.

Threads 1 and 2 (torch.set_num_threads) x tile sizes 256, 512 and whole (the default:
automatic tiling, which runs a frame of this size in one pass). Median of `--repeats` runs
after one warm-up. Prints a table and writes benchmarks/results/frame_speed.json.

    python benchmarks/frame_speed.py [--repeats 5] [--threads 1,2] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, write_json  # noqa: E402

from usdenoise.denoise.registry import make_denoiser  # noqa: E402

HEIGHT, WIDTH = 540, 800
TILES: tuple[int | None, ...] = (256, 512, None)  # None: whole frame (the default)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS / "frame_speed.json")
    args = parser.parse_args()
    frame = torch.rand(1, 1, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for tile in TILES:
            den = make_denoiser("default", tile=tile, device=args.device)
            den.denoise(frame)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                den.denoise(frame)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            row = {"threads": threads, "tile": tile or "whole", "device": args.device,
                   "median_s": round(statistics.median(times), 4),
                   "min_s": round(min(times), 4), "repeats": args.repeats}
            rows.append(row)
            print(f"threads {threads}  tile {str(row['tile']):>5}  median {row['median_s']:.3f} s"
                  f"  min {row['min_s']:.3f} s", flush=True)
    write_json(args.out, {"frame": [HEIGHT, WIDTH], "method": "default", "rows": rows,
                          "machine": machine(),
                          "command": "python benchmarks/frame_speed.py " + " ".join(sys.argv[1:])})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
