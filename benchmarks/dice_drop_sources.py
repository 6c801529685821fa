"""Where the frozen segmenter's Dice drop comes from, on original HC18 test scans.

Two diagnostics, for the real-scan target "Dice drop <= 0.003" (the segmenter's own quality,
not a target):

* `--from FOLDER` (a `real_scans.py` / `evaluate --no-reference` folder with per_image.csv):
  per method the mean and median Dice drop, and the mean over the scans the segmenter
  already segments poorly on the input (Dice below `--fragile`) and over the others.
* `--regions LABEL=METHOD:KEY=VALUE[;KEY=VALUE]`: that denoiser's output pasted into the
  input only in one region of the TRUE head mask (outside the head, inside it, a band of
  `--band` px around the outline, everything but the band), on the first `--limit` test
  scans; the Dice drop and the speckle-index change of each composite. The true mask is
  used only to locate the effect; no denoiser sees it. One more region comes from the input
  alone: `not_dark`, where the input's local mean (7-px box) is at least `DARK`, and
  `flat50` / `flat90`, where its `flatness` is at least 0.5 / 0.9.
* `--lowres LABEL=METHOD:...` (repeatable): what the segmenter sees of each denoiser's change.
  The input and the output are resized to the segmenter's input size as it resizes them
  (area), and the script reports the RMS difference there and at full size, over the scan
  sector, on the first `--limit` test scans.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dice_drop_sources.py \\
        --from benchmarks/results/real_scans_all_passes/fast \\
        --regions "s3p3=default:smooth=3;passes=3" --limit 40 --band 12 \\
        --lowres "s3p2km16=default:smooth=3;passes=2;keep_mean=16" --lowres srad=srad:

Prints the tables and writes benchmarks/results/dice_drop_sources.json.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

sys.path.insert(0, str(Path(__file__).parent))
from _common import HC18, RESULTS, machine, variant_spec, write_json  # noqa: E402

from usdenoise.data import load_dataset  # noqa: E402
from usdenoise.data.splits import split_dataset  # noqa: E402
from usdenoise.data.transforms import resize_image  # noqa: E402
from usdenoise.denoise.benchmark import FrozenSegmenter, _true_head  # noqa: E402
from usdenoise.denoise.network import PASSES_FLATNESS_SIGMA  # noqa: E402
from usdenoise.metrics import noreference as nr  # noqa: E402
from usdenoise.noise.adaptive_level import flatness  # noqa: E402

REGIONS = ("all", "outside", "inside", "band", "all_but_band", "not_dark", "flat50", "flat90")
#: `not_dark`: where the input's local mean (7-px box) is at least this (from the input alone)
DARK = 0.1
#: `flatN`: where the input's `flatness` (the one `passes` blends by) is at least N %
FLAT = {"flat50": 0.5, "flat90": 0.9}


def by_difficulty(folder: Path, fragile: float) -> dict[str, dict]:
    """Per method: Dice drop mean, median, and means over fragile / other scans."""
    with (folder / "per_image.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("dice_drop") not in ("", None)]
    out: dict[str, dict] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        drops = [float(r["dice_drop"]) for r in mine]
        hard = [float(r["dice_drop"]) for r in mine if float(r["seg_dice_input"]) < fragile]
        easy = [float(r["dice_drop"]) for r in mine if float(r["seg_dice_input"]) >= fragile]
        out[method] = {"scans": len(drops), "mean": statistics.mean(drops),
                       "median": statistics.median(drops), "fragile_scans": len(hard),
                       "fragile_mean": statistics.mean(hard) if hard else None,
                       "others_mean": statistics.mean(easy) if easy else None,
                       "fragile_share_of_total": sum(hard) / sum(drops) if sum(drops) else None}
    return out


def regions(spec_text: str, limit: int, band_px: float, segmenter_run: str, data: str
            ) -> dict[str, dict]:
    spec = variant_spec(spec_text)
    denoiser = spec.build()
    segmenter = FrozenSegmenter(segmenter_run, device="cpu")
    dataset = load_dataset(data, size=None)
    drops: dict[str, list[float]] = {name: [] for name in REGIONS}
    changes: dict[str, list[float]] = {name: [] for name in REGIONS}
    indices = list(split_dataset(dataset, seed=0)["test"])[:limit]
    for count, index in enumerate(indices, 1):
        sample = dataset[index]
        x = sample["image"][None].float()
        head = _true_head(sample, ("background", "head"))  # as evaluate finds it
        if head is None:
            continue
        inside = head.numpy()
        distance = np.where(inside, distance_transform_edt(inside),
                            distance_transform_edt(~inside))
        band = torch.from_numpy(distance <= band_px)
        where = {"all": torch.ones_like(band), "outside": ~head & ~band,
                 "inside": head & ~band, "band": band, "all_but_band": ~band,
                 "not_dark": F.avg_pool2d(x, 7, 1, 3)[0, 0] >= DARK}
        flat = flatness(x, sigma=PASSES_FLATNESS_SIGMA)[0, 0]
        where.update({name: flat >= cut for name, cut in FLAT.items()})
        y = denoiser.denoise(x)
        base = segmenter.measure(x, head, sample)["dice"]
        patches = nr.find_homogeneous_patches(x, within=nr.scan_sector(x))
        before = nr.speckle_index(x, patches)
        for name, region in where.items():
            composite = torch.where(region[None, None], y, x)
            drops[name].append(base - segmenter.measure(composite, head, sample)["dice"])
            if before:
                after = nr.speckle_index(composite, patches)
                if after is not None:
                    changes[name].append(after / before - 1.0)
        print(f"\r{count}/{len(indices)} scans", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {name: {"dice_drop": statistics.mean(drops[name]),
                   "speckle_index_change": statistics.mean(changes[name]),
                   "scans": len(drops[name])} for name in REGIONS}


def lowres(specs: list[str], limit: int, segmenter_run: str, data: str) -> dict[str, dict]:
    """RMS of output − input over the scan sector, at the segmenter's input size and at full
    size, averaged over the first `limit` test scans."""
    size = FrozenSegmenter(segmenter_run, device="cpu").size
    dataset = load_dataset(data, size=None)
    denoisers = {spec.label: spec.build() for spec in map(variant_spec, specs)}
    rms: dict[str, dict[str, list[float]]] = {k: {"small": [], "full": []} for k in denoisers}
    for index in list(split_dataset(dataset, seed=0)["test"])[:limit]:
        x = dataset[index]["image"][None].float()
        sector = torch.from_numpy(nr.scan_sector(x))
        small_x = resize_image(x[0], size)
        small_sector = resize_image(sector[None].float(), size)[0] > 0.5
        for label, denoiser in denoisers.items():
            y = denoiser.denoise(x)
            diff_small = (resize_image(y[0], size) - small_x)[0][small_sector]
            rms[label]["small"].append(float(diff_small.square().mean().sqrt()))
            rms[label]["full"].append(float((y - x)[0, 0][sector].square().mean().sqrt()))
    return {label: {"rms_at_segmenter_size": statistics.mean(v["small"]),
                    "rms_full_size": statistics.mean(v["full"]), "scans": len(v["full"]),
                    "segmenter_size": size} for label, v in rms.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="folder", type=Path, help="evaluate folder")
    parser.add_argument("--fragile", type=float, default=0.9,
                        help="input Dice below which a scan counts as fragile")
    parser.add_argument("--regions", help="LABEL=METHOD:KEY=VALUE[;KEY=VALUE]")
    parser.add_argument("--lowres", action="append", default=[],
                        metavar="LABEL=METHOD:KEY=VALUE[;KEY=VALUE]",
                        help="RMS change at the segmenter's input size (repeatable)")
    parser.add_argument("--limit", type=int, default=40,
                        help="test scans for --regions and --lowres")
    parser.add_argument("--band", type=float, default=12.0, help="px either side of outline")
    parser.add_argument("--segmenter", default="runs/seg-snapshot")
    parser.add_argument("--data", default=HC18)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result: dict = {"machine": machine(), "command": " ".join(sys.argv)}
    if args.folder:
        table = result["by_difficulty"] = by_difficulty(args.folder, args.fragile)
        print(f"Dice drop by the segmenter's input Dice (fragile: < {args.fragile:g})")
        print(f"{'method':<16} {'mean':>8} {'median':>8} {'fragile n':>9} {'fragile':>8} "
              f"{'others':>8} {'share':>6}")
        for method, row in table.items():
            print(f"{method:<16} {row['mean']:8.4f} {row['median']:8.4f} "
                  f"{row['fragile_scans']:9d} {row['fragile_mean'] or 0:8.4f} "
                  f"{row['others_mean'] or 0:8.4f} {row['fragile_share_of_total'] or 0:6.2f}")
    if args.regions:
        table = result["regions"] = regions(args.regions, args.limit, args.band,
                                            args.segmenter, args.data)
        result["regions_setting"] = {"spec": args.regions, "limit": args.limit,
                                     "band_px": args.band}
        print(f"\n{args.regions} pasted into the input by region ({args.limit} scans, band "
              f"±{args.band:g} px)")
        print(f"{'region':<14} {'Dice drop':>9} {'speckle index':>13}")
        for name, row in table.items():
            print(f"{name:<14} {row['dice_drop']:9.4f} {row['speckle_index_change']:+13.1%}")
    if args.lowres:
        table = result["lowres"] = lowres(args.lowres, args.limit, args.segmenter, args.data)
        print(f"\nRMS change over the scan sector ({args.limit} scans)")
        print(f"{'method':<16} {'at segmenter size':>17} {'full size':>9}")
        for label, row in table.items():
            print(f"{label:<16} {row['rms_at_segmenter_size']:17.4f} {row['rms_full_size']:9.4f}")
    write_json(RESULTS / "dice_drop_sources.json", result)


if __name__ == "__main__":
    main()
