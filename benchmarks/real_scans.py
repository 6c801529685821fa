"""Real-scan benchmark: denoisers on original HC18 test images at native size, no noise added.

Per method at its default setting: speckle-index change and ENL in homogeneous patches found
on the input, skull-edge contrast ratio, method-noise correlation, gCNR of the head, and with
`--segmenter` the frozen segmenter's Dice drop and HC error change; then every figure at a
common speckle reduction (`--match`, interpolated on each method's strength curve).
The slow filters (`--slow`, default obnlm and bm3d, ~40 s per 800 x 540 image on one thread)
run on the first `--slow-limit` images only.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/real_scans.py \\
        --segmenter runs/seg-segnet128 --limit 10 --slow-limit 2 \\
        --variant default_s3=default:smooth=3

Writes benchmarks/results/real_scans.json (the records and the command) and the evaluate
folders under benchmarks/results/real_scans/ (results.md, curves.json, tradeoff/*.png);
`--name` changes both names. `--limit 0` runs the whole test split (110 images).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from _common import HC18, RESULTS, also_spec, machine, variant_spec, write_json

from usdenoise.denoise.benchmark import EvaluationSettings, MethodSpec, evaluate, parse_methods

KEYS = ("speckle_index_change", "patch_enl", "edge_ratio", "method_noise_corr", "gcnr",
        "dice_drop", "dice_drop_median", "hc_error_change_mm", "matched_strength",
        "matched_edge_ratio", "matched_dice_drop", "matched_hc_error_change_mm",
        "seconds_per_image")


def run(methods: str, limit: int, args: argparse.Namespace, out: Path,
        also: list[MethodSpec] = ()) -> list[dict]:
    settings = EvaluationSettings(
        data=args.data, methods=[*parse_methods(methods), *also], split="test", size=None,
        limit=limit or None,
        no_reference=True, segmenter=args.segmenter, examples=2,
        match_reduction=args.match, device="cpu",
    )
    return evaluate(settings, out, overwrite=True)


def fmt(value: object) -> str:
    return "–" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=HC18)
    parser.add_argument("--segmenter", default=None, help="segmenter run (trained on originals)")
    parser.add_argument("--methods", default="default,lee,srad,median")
    parser.add_argument("--slow", default="obnlm,bm3d", help="methods run on fewer images")
    parser.add_argument("--limit", type=int, default=10,
                        help="test images for --methods (0: the whole test split)")
    parser.add_argument("--slow-limit", type=int, default=2,
                        help="test images for --slow (0: none)")
    parser.add_argument("--match", type=float, default=0.3, help="common speckle reduction")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=CHECKPOINT",
                        help="another network beside --methods (e.g. diconvae=runs/dcae)")
    parser.add_argument("--variant", action="append", default=[],
                        metavar="LABEL=METHOD:KEY=VALUE[;KEY=VALUE]",
                        help="a method at other settings beside --methods "
                             "(e.g. default_s3=default:smooth=3)")
    parser.add_argument("--name", default="real_scans",
                        help="results go to benchmarks/results/NAME.json and NAME/")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = RESULTS / args.name
    started = time.perf_counter()
    parts = {}
    also = [*map(also_spec, args.also), *map(variant_spec, args.variant)]
    for name, methods, limit in (("fast", args.methods, args.limit),
                                 ("slow", args.slow, args.slow_limit)):
        # --limit 0 is the whole test split; --slow-limit 0 skips the slow filters
        if methods and (limit or name == "fast"):
            part_start = time.perf_counter()
            parts[name] = run(methods, limit, args, folder / name,
                              also if name == "fast" else [])
            print(f"{name}: {methods} on {limit or 'all'} images in "
                  f"{time.perf_counter() - part_start:.0f} s", flush=True)
    for name, records in parts.items():
        print(f"\n## {name}: {records[0]['n_images']} images of {args.data} (test split), "
              f"match at speckle index -{100 * args.match:.0f} %")
        print("| method | " + " | ".join(KEYS) + " |")
        print("|" + "---|" * (len(KEYS) + 1))
        for r in records:
            print(f"| {r['method']} | " + " | ".join(fmt(r.get(k)) for k in KEYS) + " |")
    write_json(RESULTS / f"{args.name}.json", {
        "command": " ".join([sys.executable, *sys.argv]), "machine": machine(),
        "seconds": time.perf_counter() - started, "match_reduction": args.match,
        "parts": {name: records for name, records in parts.items()},
    })
    print(f"\nwritten: {RESULTS / args.name}.json, {folder}/")


if __name__ == "__main__":
    main()
