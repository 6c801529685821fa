"""The segmentation targets of the downstream issue, from trained runs and a finished study.

    python benchmarks/segmentation_targets.py --unet RUN [--segnet RUN] [--study DIR] \
        [--data hc18:../shared/data/hc18]

- U-Net (and SegNet) on the original test images: Dice and HC error at each image's own size
  (`usdenoise segment evaluate`), target Dice >= 0.97 and HC error <= 2.0 mm.
- From `study.json`: the share of the Dice lost to Rayleigh 0.5 speckle that the best arm
  recovers (protocol A, target >= 80%) and the Dice the task-tuned arms lose on original images
  (target <= 0.005).

Prints a table and writes benchmarks/results/segmentation_targets.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import HC18, RESULTS, machine, write_json, write_text  # noqa: E402


def evaluate(run: str, data: str, postprocess: str) -> dict:
    from usdenoise.segmentation.evaluate import SegmentEvaluation, evaluate_segmenter

    with tempfile.TemporaryDirectory() as out:
        records, _ = evaluate_segmenter(
            SegmentEvaluation(data=data, model=run, split="test", examples=0,
                              postprocess=postprocess), Path(out))
    r = records[0]
    return {"model": run, "arch": r["arch"], "postprocess": postprocess,
            "n_images": r["n_images"], "dice": r["dice"],
            "hc_abs_error_mm": r["hc_abs_error_mm"], "hd95_mm": r["hd95"],
            "area_bias": r["area_bias"], "n_missing_hc": r["n_missing_hc"],
            "met": r["dice"] >= 0.97 and (r["hc_abs_error_mm"] or 1e9) <= 2.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--unet", required=True)
    parser.add_argument("--segnet")
    parser.add_argument("--study")
    parser.add_argument("--data", default=HC18)
    parser.add_argument("--postprocess", default="none,ellipse",
                        help="comma list of segment evaluate --postprocess modes to measure")
    args = parser.parse_args()

    result: dict = {"machine": machine(), "data": args.data, "segmenters": []}
    lines = ["# Segmentation targets", "", "| model | arch | postprocess | test images | Dice | "
             "HC error (mm) | HD95 (mm) | area bias | target met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in filter(None, (args.unet, args.segnet)):
        for mode in args.postprocess.split(","):
            r = evaluate(run, args.data, mode)
            result["segmenters"].append(r)
            lines.append(f"| {run} | {r['arch']} | {mode} | {r['n_images']} | {r['dice']:.4f} | "
                         f"{r['hc_abs_error_mm']:.2f} | {r['hd95_mm']:.2f} | "
                         f"{r['area_bias']:+.4f} | {'yes' if r['met'] else 'no'} |")
    if args.study:
        doc = json.loads((Path(args.study) / "study.json").read_text())
        result["study"] = {"folder": args.study, "settings": doc["settings"],
                           "targets": doc["targets"]}
        lines += ["", f"Study {args.study} (size {doc['settings']['size']} px):", ""]
        for name, t in doc["targets"].items():
            shown = {k: v for k, v in t.items() if k not in ("target", "met", "arms")}
            lines.append(f"- {name}: {'met' if t['met'] else 'NOT met'} (target {t['target']}): "
                         + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in shown.items()))
    text = "\n".join(lines) + "\n"
    print(text)
    write_json(RESULTS / "segmentation_targets.json", result)
    write_text(RESULTS / "segmentation_targets.md", text)


if __name__ == "__main__":
    main()
