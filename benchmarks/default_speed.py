"""Speed targets of the default model: per 256² image vs BM3D (1 thread), and an 800 x 540
frame with 2 threads. Prints only; median of repeated calls on this machine.

    python benchmarks/default_speed.py
"""
import os
import statistics
import time

import torch

from usdenoise.data import load_dataset
from usdenoise.denoise import make_denoiser

torch.set_num_threads(1)
x = load_dataset("phantom:2", size=256)[0]["image"][None].float()
def med(f, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)
d = make_denoiser("default", device="cpu"); b = make_denoiser("bm3d")
d.denoise(x)
td = med(lambda: d.denoise(x), 7); tb = med(lambda: b.denoise(x), 3)
print(f"256² 1 thread: default {td*1000:.1f} ms, bm3d {tb*1000:.0f} ms, ratio 1/{tb/td:.0f}  load {os.getloadavg()[0]:.1f}")
torch.set_num_threads(2)
y = torch.rand(1, 1, 540, 800)
d.denoise(y)
t2 = med(lambda: d.denoise(y), 7)
print(f"800x540 2 threads: {t2*1000:.0f} ms ({1/t2:.1f} frames/s)")
