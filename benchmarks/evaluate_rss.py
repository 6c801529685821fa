"""Peak memory of `usdenoise evaluate` on a folder must not grow with the number of images.

Writes N synthetic 256 x 256 PNGs (a bright disc on a gradient, with speckle) into a
temporary folder outside the repository, runs

    usdenoise evaluate folder:TMP --methods lee --split all --noise rayleigh:0.5 \
        --strengths none --examples 2 --out TMP/ev

in a subprocess for each N and reads that subprocess's peak RSS (`os.wait4`). One noise
level and no strength curves keep the run short; every image is still read, denoised,
measured and written to per_image.csv. Target: the largest N within 10 % of the smallest.
The images are deleted afterwards; the figures go to benchmarks/results/evaluate_rss.json.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/evaluate_rss.py            # 500 and 5000
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/evaluate_rss.py 500 2000
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

RESULTS = Path(__file__).resolve().parent / "results" / "evaluate_rss.json"
SIZE = 256


def write_images(folder: Path, count: int) -> None:
    """`count` distinct 8-bit PNGs: the same disc on a gradient, each with its own speckle."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = 0.25 + 0.3 * x + 0.4 * (((x - 0.5) ** 2 + (y - 0.55) ** 2) < 0.06)
    rng = np.random.default_rng(0)
    for i in range(count):
        speckle = rng.rayleigh(scale=np.sqrt(2 / np.pi), size=base.shape)  # mean 1
        image = np.clip(base * speckle, 0, 1)
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"img{i:05d}.png")


def peak_rss_mb(command: list[str]) -> tuple[float, float, int]:
    """(peak resident set of that one process in MB, wall seconds, exit code)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        print(process.stderr.read().decode(errors="replace")[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, seconds, process.returncode  # Linux: kilobytes


def main(counts: list[int]) -> None:
    figures = []
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="usdenoise-rss-") as tmp:
            images, out = Path(tmp) / "images", Path(tmp) / "ev"
            write_images(images, count)
            command = [sys.executable, "-m", "usdenoise", "evaluate", f"folder:{images}",
                       "--methods", "lee", "--split", "all", "--noise", "rayleigh:0.5",
                       "--strengths", "none", "--examples", "2", "--threads", "1",
                       "--out", str(out)]
            rss, seconds, code = peak_rss_mb(command)
            rows = sum(1 for _ in (out / "per_image.csv").open()) - 1 if code == 0 else 0
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"{count} images: peak RSS {rss:.0f} MB, {seconds:.0f} s, exit {code}, "
              f"{rows} per-image rows", flush=True)
        figures.append({"images": count, "peak_rss_mb": round(rss, 1),
                        "seconds": round(seconds, 1), "exit_code": code,
                        "per_image_rows": rows})
    ratio = figures[-1]["peak_rss_mb"] / figures[0]["peak_rss_mb"]
    print(f"ratio {figures[-1]['images']} / {figures[0]['images']} images: {ratio:.3f} "
          f"(target <= 1.10)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": figures, "ratio": round(ratio, 4),
                                   "target": 1.10, "load": os.getloadavg()[0]}, indent=2)
                       + "\n")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [500, 5000])
