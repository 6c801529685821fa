"""What the real-scan edge target allows: the skull-edge ratio of a *perfect* despeckler.

The real-scan benchmark's edge contrast is the mean gradient magnitude (Gaussian σ = 2 px) on
the annotated outline. Speckle has a gradient of its own, so part of that contrast on a raw
scan is speckle, and a method that removes the speckle there lowers the figure even when the
edge itself is untouched. This script measures how large that part is.

1. Phantom with physics speckle (800 x 540, fan, structures; clean image known): per level,
   the speckle-to-edge gradient ratio (mean gradient magnitude in the homogeneous patches /
   on the outline, both on the noisy image), and the speckle index change and edge ratio of
   two oracles: B(x), the clean image through the same PSF without speckle (a perfect
   despeckler that keeps the scanner's resolution), and x itself (one that also deblurs).
2. HC18 test images (nothing added): the same speckle-to-edge gradient ratio.

If HC18's ratio lies at or above a phantom level whose oracle B(x) scores below 0.95, no
despeckler that keeps the scan's resolution can reach both "speckle index -40 %" and
"edge ratio >= 0.95" on HC18; only one that also sharpens the edge can.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/edge_metric_check.py --limit 20

Prints a table and writes benchmarks/results/edge_metric_check.json.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from _common import HC18, RESULTS, machine, write_json
from scipy import ndimage

from usdenoise.data import load_dataset
from usdenoise.data.phantom import make_phantom
from usdenoise.data.splits import split_dataset
from usdenoise.metrics import noreference as nr
from usdenoise.metrics.segmentation import nanmean
from usdenoise.noise import make_noise

LEVELS = ("physics:0.05", "physics:0.1", "physics:0.2")


def gradient_ratio(image: np.ndarray, mask: np.ndarray, patches: list[nr.Patch]) -> float | None:
    """Mean gradient magnitude (σ = EDGE_SIGMA) in the patches over that on the outline."""
    grad = ndimage.gaussian_gradient_magnitude(image, nr.EDGE_SIGMA, mode="reflect")
    border = nr.mask_border(mask)
    if not patches or not border.any():
        return None
    return float(np.mean([p.view(grad).mean() for p in patches]) / grad[border].mean())


def change(after: float | None, before: float | None) -> float | None:
    return None if after is None or not before else after / before - 1.0


def mean(values: list[float | None]) -> float | None:
    value = nanmean(values)
    return None if value is None else round(value, 4)


def phantom_rows(seeds: int) -> list[dict]:
    rows = []
    for spec in LEVELS:
        noise = make_noise(spec)
        per: dict[str, list[float | None]] = {k: [] for k in (
            "speckle_index", "gradient_ratio", "oracle_si_change", "oracle_edge_ratio",
            "clean_si_change", "clean_edge_ratio")}
        for seed in range(seeds):
            scene = make_phantom((540, 800), seed=seed, fan=True, structures=True)
            clean = scene["image"][None]
            noisy = noise(clean, generator=torch.Generator().manual_seed(seed))
            y, b, x = (t[0, 0].double().numpy() for t in (noisy, noise.noise_free(clean), clean))
            mask = scene["mask"].numpy()
            patches = nr.find_homogeneous_patches(y)
            si = nr.speckle_index(y, patches)
            per["speckle_index"].append(si)
            per["gradient_ratio"].append(gradient_ratio(y, mask, patches))
            for name, oracle in (("oracle", b), ("clean", x)):
                per[f"{name}_si_change"].append(change(nr.speckle_index(oracle, patches), si))
                per[f"{name}_edge_ratio"].append(nr.edge_ratio(oracle, y, mask))
        rows.append({"data": f"phantom {spec}", "images": seeds,
                     **{k: mean(v) for k, v in per.items()}})
    return rows


def hc18_row(data: str, limit: int) -> dict:
    dataset = load_dataset(data, size=None)
    ids = list(split_dataset(dataset, seed=0)["test"])[:limit or None]
    si, ratio = [], []
    for index in ids:
        sample = dataset[index]
        y = sample["image"][0].double().numpy()
        patches = nr.find_homogeneous_patches(y)
        si.append(nr.speckle_index(y, patches))
        ratio.append(gradient_ratio(y, sample["mask"].numpy().squeeze(), patches))
    kept = [r for r in ratio if r is not None]
    return {"data": "HC18 test (as scanned)", "images": len(ids), "speckle_index": mean(si),
            "gradient_ratio": mean(ratio),
            "gradient_ratio_quartiles": [round(float(q), 3)
                                         for q in np.percentile(kept, [25, 50, 75])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=HC18)
    parser.add_argument("--limit", type=int, default=20, help="HC18 test images (0: all)")
    parser.add_argument("--seeds", type=int, default=8, help="phantoms per level")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = phantom_rows(args.seeds) + [hc18_row(args.data, args.limit)]
    keys = ("speckle_index", "gradient_ratio", "oracle_si_change", "oracle_edge_ratio",
            "clean_si_change", "clean_edge_ratio")
    print("| data | images | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for row in rows:
        cells = ["–" if row.get(k) is None else f"{row[k]:.3f}" for k in keys]
        print(f"| {row['data']} | {row['images']} | " + " | ".join(cells) + " |")
    hc18 = rows[-1]
    # the phantom levels' oracle edge ratio against their gradient ratio, read at HC18's
    levels = sorted((r["gradient_ratio"], r["oracle_edge_ratio"]) for r in rows[:-1])
    hc18["oracle_edge_ratio_interpolated"] = {
        name: round(float(np.interp(q, *zip(*levels, strict=True))), 3)
        for name, q in zip(("q25", "median", "q75"), hc18["gradient_ratio_quartiles"],
                           strict=True)}
    print("HC18 gradient ratio quartiles:", hc18["gradient_ratio_quartiles"])
    print("a perfect despeckler's edge ratio there, read off the phantom levels:",
          hc18["oracle_edge_ratio_interpolated"])
    out = RESULTS / "edge_metric_check.json"
    write_json(out, {"command": " ".join(["python", *sys.argv]), "machine": machine(),
                     "rows": rows})
    print(f"written: {out}")


if __name__ == "__main__":
    main()
