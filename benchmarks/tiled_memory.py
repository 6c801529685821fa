"""Peak memory (RSS) of tiled inference on a 2048 x 2048 image with the `fast` DiConvAE.

Each measurement runs in a fresh subprocess (so the parent's memory does not count) and
reads `resource.getrusage(RUSAGE_SELF).ru_maxrss` at the end. The baseline subprocess does
everything except the network pass (imports, network, input image), so the difference is
what tiling costs. Target: peak RSS <= 1.5 GB for tile 512, overlap 32.

    .venv/bin/python benchmarks/tiled_memory.py [--size 2048] [--tile 512] [--overlap 32]

Prints a table and writes benchmarks/results/tiled_memory.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads({threads})
from usdenoise.models import build_network
from usdenoise.models.tiling import denoise_tiled
torch.manual_seed(0)
net = build_network("diconvae", "fast").eval()
x = torch.rand(1, 1, {size}, {size})
t0 = time.perf_counter()
mode = "{mode}"
with torch.no_grad():
    if mode == "tiled":
        y = denoise_tiled(net, x, tile={tile}, overlap={overlap})
    elif mode == "whole":
        y = net(x)
    else:
        y = x
seconds = time.perf_counter() - t0
kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({{"mode": mode, "peak_rss_mb": kib / 1024, "seconds": seconds,
                  "out_shape": list(y.shape)}}))
"""


def measure(mode: str, *, size: int, tile: int, overlap: int, threads: int) -> dict:
    code = CHILD.format(mode=mode, size=size, tile=tile, overlap=overlap, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--whole", action="store_true",
                        help="also measure the untiled pass (needs several GB at 2048 px)")
    args = parser.parse_args()
    modes = ["baseline", "tiled"] + (["whole"] if args.whole else [])
    rows = [measure(m, size=args.size, tile=args.tile, overlap=args.overlap,
                    threads=args.threads) for m in modes]
    target_mb = 1.5 * 1024
    tiled = next(r for r in rows if r["mode"] == "tiled")
    result = {
        "benchmark": "tiled_memory",
        "network": "diconvae/fast",
        "size": args.size, "tile": args.tile, "overlap": args.overlap,
        "threads": args.threads,
        "python": platform.python_version(), "machine": platform.machine(),
        "rows": rows,
        "target_peak_rss_mb": target_mb,
        "meets_target": tiled["peak_rss_mb"] <= target_mb,
    }
    print(f"{'mode':<10}{'peak RSS (MB)':>15}{'seconds':>10}")
    for r in rows:
        print(f"{r['mode']:<10}{r['peak_rss_mb']:>15.0f}{r['seconds']:>10.2f}")
    print(f"target <= {target_mb:.0f} MB: {'met' if result['meets_target'] else 'MISSED'}")
    out = Path(__file__).resolve().parent / "results" / "tiled_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
