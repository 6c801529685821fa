"""Native speckle: the calibration of `usdenoise.noise.estimate`, estimates on HC18, and the
classic baselines' speckle index before/after on real scans.

    .venv/bin/python benchmarks/native_speckle.py calibrate [--seeds 4]
    .venv/bin/python benchmarks/native_speckle.py estimate [--hc18 PATH] [--count 20]
    .venv/bin/python benchmarks/native_speckle.py baselines [--hc18 PATH] [--count 4]

`calibrate`: physics speckle (sigma 0.1, frequency 0.25) on flat 0.5 images of 256², one
batch of `--seeds` images per (axial_sigma, lateral_sigma) on a grid; `estimate_speckle(...,
calibrate=False)` measures the FWHMs and the level on each; the means per grid point are
printed as the `CALIBRATION` table to paste into src/usdenoise/noise/estimate.py, then the
calibrated estimator is checked on fresh seeds (relative errors).

`estimate`: `estimate_speckle` on the first `--count` HC18 training images at native size
(800x540): patches, grain FWHM axial/lateral, level, physics parameters, and the medians.

`baselines`: on the first `--count` HC18 images at native size, the speckle index (std/mean,
averaged over the homogeneous patches the estimator finds on the input) before and after
bm3d (noise=psd, the new default, and noise=white, the old wavelet sigma), nlm and obnlm
(level from the speckle estimate, new default, and the old wavelet estimate), with the
seconds per image. Single thread. Writes benchmarks/results/native_speckle_*.json
(git-ignored).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from usdenoise.io import read_image
from usdenoise.noise.estimate import estimate_speckle
from usdenoise.noise.speckle import Physics

RESULTS = Path(__file__).parent / "results"
HC18_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hc18"
AXIAL_GRID = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)
LATERAL_GRID = (0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0)


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def physics_flat(axial: float, lateral: float, sigma: float, seeds: int, seed: int,
                 size: int = 256, level: float = 0.5) -> torch.Tensor:
    model = Physics(sigma, axial_sigma=axial, lateral_sigma=lateral)
    g = torch.Generator().manual_seed(seed)
    return model(torch.full((seeds, 1, size, size), level), generator=g)


def calibrate(args: argparse.Namespace) -> None:
    rows = []
    start = time.perf_counter()
    for i, a in enumerate(AXIAL_GRID):
        for j, lat in enumerate(LATERAL_GRID):
            y = physics_flat(a, lat, 0.1, args.seeds, seed=1000 * i + j)
            es = [estimate_speckle(y[k], calibrate=False) for k in range(args.seeds)]
            es = [e for e in es if e.axial_fwhm is not None and e.lateral_fwhm is not None]
            fa = statistics.fmean(e.axial_fwhm for e in es)
            fl = statistics.fmean(e.lateral_fwhm for e in es)
            ratio = statistics.fmean(e.level for e in es) / 0.1
            rows.append((a, lat, round(fa, 4), round(fl, 4), round(ratio, 4)))
    print(f"# {len(rows)} grid points in {time.perf_counter() - start:.1f} s")
    print("CALIBRATION: tuple[tuple[float, float, float, float, float], ...] = (")
    for row in rows:
        print(f"    {row},")
    print(")")
    write_json(RESULTS / "native_speckle_calibration.json",
               {"seeds": args.seeds, "rows": rows, "columns": ["axial_sigma", "lateral_sigma",
                                                               "axial_fwhm", "lateral_fwhm",
                                                               "level_ratio"]})


def check(args: argparse.Namespace) -> None:
    """Calibrated estimates on fresh seeds: relative error of axial/lateral sigma and sigma."""
    out = []
    for a, lat in [(0.7, 1.2), (1.0, 1.5), (1.5, 2.5), (2.0, 3.5), (2.5, 4.0), (3.5, 6.0)]:
        for sigma in (0.05, 0.1):
            y = physics_flat(a, lat, sigma, 2, seed=int(1e6 * a + 1e3 * lat + 1e2 * sigma))
            for k in range(2):
                e = estimate_speckle(y[k])
                err = (e.axial_sigma / a - 1, e.lateral_sigma / lat - 1, e.sigma / sigma - 1)
                out.append(max(abs(v) for v in err))
                print(f"a={a} l={lat} s={sigma}: axial {e.axial_sigma:.3f} lateral "
                      f"{e.lateral_sigma:.3f} sigma {e.sigma:.4f} worst {max(map(abs, err)):.1%}")
    print(f"worst relative error {max(out):.1%}")


def hc18_files(root: Path, count: int) -> list[Path]:
    files = sorted((root / "training_set").glob("*_HC.png"))[:count]
    if not files:
        sys.exit(f"no HC18 images under {root}/training_set")
    return files


def estimate(args: argparse.Namespace) -> None:
    rows = []
    for path in hc18_files(Path(args.hc18), args.count):
        start = time.perf_counter()
        e = estimate_speckle(read_image(path))
        seconds = time.perf_counter() - start
        rows.append({"image": path.name, "seconds": round(seconds, 3),
                     **e.to_dict(positions=False)})
        phys = e.to_dict()["physics"] or {}
        print(f"{path.name}: patches {e.patches:3d}  FWHM axial {e.axial_fwhm or 0:.2f} lateral "
              f"{e.lateral_fwhm or 0:.2f} px  level {e.level or 0:.4f}  physics axial_sigma "
              f"{phys.get('axial_sigma') or 0:.2f} lateral_sigma "
              f"{phys.get('lateral_sigma') or 0:.2f}  ({seconds:.2f} s)")
    found = [r for r in rows if r["patches"]]

    def med(key, sub=None):
        values = [(r[key] if sub is None else r[key][sub]) for r in found]
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 4) if values else None

    summary = {
        "images": len(rows), "measured": len(found),
        "patches_median": med("patches"), "axial_fwhm_px": med("axial_fwhm_px"),
        "lateral_fwhm_px": med("lateral_fwhm_px"), "level": med("level"),
        "axial_sigma": med("physics", "axial_sigma"),
        "lateral_sigma": med("physics", "lateral_sigma"),
        "speckle_index": med("speckle_index"),
        "seconds_median": med("seconds"),
    }
    print("median:", json.dumps(summary))
    write_json(RESULTS / "native_speckle_hc18.json", {"summary": summary, "images": rows})


def speckle_index(image: np.ndarray, positions, patch: int) -> float:
    values = []
    for r, c in positions:
        tile = image[r : r + patch, c : c + patch]
        if tile.mean() > 0:
            values.append(tile.std() / tile.mean())
    return float(np.mean(values))


def baselines(args: argparse.Namespace) -> None:
    from usdenoise.denoise import make_denoiser

    methods = {
        "bm3d noise=psd": ("bm3d", {}),
        "bm3d noise=white": ("bm3d", {"noise": "white"}),
        "nlm noise=speckle": ("nlm", {}),
        "nlm noise=wavelet": ("nlm", {"noise": "wavelet"}),
        "obnlm noise=speckle": ("obnlm", {}),
        "obnlm noise=wavelet": ("obnlm", {"noise": "wavelet"}),
    }
    rows = []
    for path in hc18_files(Path(args.hc18), args.count):
        x = read_image(path)
        e = estimate_speckle(x)
        before = speckle_index(x[0].numpy(), e.positions, e.patch)
        row = {"image": path.name, "patches": e.patches, "level": e.level, "before": before}
        for label, (name, params) in methods.items():
            den = make_denoiser(name, **params)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = den.denoise(x[None])[0, 0].numpy()
            row[label] = {"after": speckle_index(out, e.positions, e.patch),
                          "seconds": time.perf_counter() - start}
        rows.append(row)
        print(f"{path.name}: patches {e.patches}, level {e.level:.4f}, SI before {before:.4f}; "
              + "; ".join(f"{k} {v['after']:.4f} ({v['seconds']:.1f} s)"
                          for k, v in row.items() if isinstance(v, dict)))
    summary = {"before": statistics.fmean(r["before"] for r in rows)}
    for label in methods:
        summary[label] = {
            "after": statistics.fmean(r[label]["after"] for r in rows),
            "seconds": statistics.fmean(r[label]["seconds"] for r in rows),
        }
    print("mean over images:", json.dumps(summary, indent=1))
    write_json(RESULTS / "native_speckle_baselines.json",
               {"summary": summary, "images": rows, "threads": torch.get_num_threads()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("--seeds", type=int, default=4)
    sub.add_parser("check")
    for name, count in (("estimate", 20), ("baselines", 4)):
        p = sub.add_parser(name)
        p.add_argument("--hc18", default=str(HC18_DEFAULT))
        p.add_argument("--count", type=int, default=count)
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"calibrate": calibrate, "check": check, "estimate": estimate,
     "baselines": baselines}[args.command](args)


if __name__ == "__main__":
    main()
