"""Benchmark: load the whole HC18 dev set with filled masks, resized to 256x256.

    .venv/bin/python benchmarks/data_loading.py [--root PATH] [--size 256] [--workers N]

Target (issue 3): <= 30 s for the 713 images on a 2-core CPU. Prints the figures and
writes them to benchmarks/results/data_loading.json. `--workers 0` loads in this process;
otherwise a thread pool (OpenCV, Pillow and NumPy release the GIL while decoding/filling).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path,
                        default=Path(os.environ.get("USDENOISE_HC18",
                                                    ROOT.parent / "shared" / "data" / "hc18")))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    from usdenoise.data import load_dataset

    torch.set_num_threads(1)
    start = time.perf_counter()
    dataset = load_dataset(f"hc18:{args.root}", size=args.size)
    listed = time.perf_counter() - start

    def load(index: int) -> tuple[int, int]:
        sample = dataset[index]
        return index, int(sample["mask"].sum())

    start = time.perf_counter()
    if args.workers > 0:
        with ThreadPoolExecutor(args.workers) as pool:
            results = list(pool.map(load, range(len(dataset))))
    else:
        results = [load(i) for i in range(len(dataset))]
    seconds = time.perf_counter() - start
    empty = [dataset.ids[i] for i, area in results if area == 0]

    figures = {
        "benchmark": "hc18 loading + mask filling + resize",
        "images": len(dataset), "size": args.size, "workers": args.workers,
        "listing_seconds": round(listed, 3), "seconds": round(seconds, 2),
        "images_per_second": round(len(dataset) / seconds, 1),
        "target_seconds": 30.0, "meets_target": listed + seconds <= 30.0,
        "empty_masks": empty, "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "torch": torch.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_loading.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(f"HC18: {len(dataset)} images -> {args.size}x{args.size} with filled masks in "
          f"{seconds:.2f} s ({figures['images_per_second']} images/s, {args.workers} workers; "
          f"listing {listed:.2f} s); target <= 30 s: "
          f"{'met' if figures['meets_target'] else 'MISSED'}")
    print(f"written {args.out / 'data_loading.json'}")
    return 0 if not empty else 1


if __name__ == "__main__":
    sys.exit(main())
