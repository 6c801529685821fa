"""Quality of a denoising network vs BM3D at its best-tuned sigma (issue 5's targets).

    nice -n 19 .venv/bin/python benchmarks/denoise_quality.py --model default|PATH
        [--data hc18:../shared/data/hc18] [--limit 24] [--phantom-limit 12]

`--model` is `default` (the shipped model) or a checkpoint (X.safetensors, X.json or a run
folder), e.g. runs/default-v1/model_best.safetensors. Three parts, all through
`usdenoise.denoise.benchmark` (same seeded noise for every method, test part of the subject
split, seed 0,
256^2, first `limit` test images):

1. DATA with Rayleigh 0.10/0.25/0.50/0.75: noisy, the model, and BM3D over a grid per level:
   the default (log route, sigma estimated per image), log route with sigma = {0.75, 1, 1.25,
   1.5} x the level's true log-noise std, plain route with sigma = {0.3, 0.6} x 0.655 level
   (the intensity noise std at grey 0.3/0.6). The best BM3D per level is picked by PSNR on
   the same images (this favours BM3D). Target: model PSNR >= BM3D + 0.5 dB and SSIM >= BM3D's.
2. The phantom with `physics` speckle at 0.05/0.1/0.2 (clean echogenicity known): the same
   table, BM3D grid = default and plain route with sigma = {0.5, 1, 2, 3} x level.
3. No reference: DATA's original test images (no added noise), ENL / gCNR (head vs
   background ROIs from the masks) and EPI against the input, for the model and BM3D.

If a `splits.json` lies next to the checkpoint (a training run folder), the evaluated test
subjects are checked against the run's train/val subjects. Writes
benchmarks/results/denoise_quality.json and .md, and the evaluator's files under
benchmarks/results/denoise_quality/.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from _common import (
    HC18,
    RAYLEIGH_LEVELS,
    RESULTS,
    also_spec,
    machine,
    markdown_table,
    model_method,
    print_table,
    run_evaluation,
    variant_spec,
    verdict,
    write_json,
    write_text,
)

from usdenoise.denoise.benchmark import MethodSpec

PHYSICS_LEVELS = (0.05, 0.10, 0.20)
OUT = RESULTS / "denoise_quality"


def log_noise_std(level: float) -> float:
    """Std of log(1 + R - E[R]), R ~ Rayleigh(level): the noise BM3D sees on the log route."""
    g = torch.Generator().manual_seed(0)
    r = torch.sqrt(-2.0 * torch.log1p(-torch.rand(1_000_000, generator=g, dtype=torch.float64)))
    return float(torch.log(1.0 + level * (r - math.sqrt(math.pi / 2.0))).std())


def bm3d(label: str, **params) -> MethodSpec:
    return MethodSpec("bm3d", params, label)


def rayleigh_grid(level: float) -> list[MethodSpec]:
    s = log_noise_std(level)
    grid = [bm3d("bm3d default")]
    grid += [bm3d(f"bm3d log σ={f * s:.3f}", sigma=round(f * s, 4)) for f in (0.75, 1, 1.25, 1.5)]
    grid += [bm3d(f"bm3d plain σ={g * 0.655 * level:.3f}", route="plain",
                  sigma=round(g * 0.655 * level, 4)) for g in (0.3, 0.6)]
    return grid


def physics_grid(level: float) -> list[MethodSpec]:
    grid = [bm3d("bm3d default")]
    return grid + [bm3d(f"bm3d plain σ={f * level:.3f}", route="plain", sigma=round(f * level, 4))
                   for f in (0.5, 1, 2, 3)]


def compare(data: str, noise: str, levels, grid_for, model: MethodSpec, limit: int,
            also: list[MethodSpec] = (), level_grid: tuple[float, ...] = ()) -> dict:
    """Per level: evaluate noisy, model(s) and the BM3D grid; pick the best BM3D by PSNR.

    With `level_grid` the model also runs told each of those speckle levels (`level=`), and
    the best of them and its default is reported as "tuned": the same oracle choice by PSNR
    against the reference that picks the best BM3D.
    """
    records, rows = [], []
    tuned_specs = [MethodSpec(model.name, {**model.params, "level": g},
                              f"{model.label} level={g:g}") for g in level_grid]
    for level in levels:
        methods = [MethodSpec("noisy", {}, "noisy"), model, *tuned_specs, *also,
                   *grid_for(level)]
        recs = run_evaluation(OUT / f"{noise}_{level:g}", data=data, methods=methods,
                              noises=[f"{noise}:{level:g}"], limit=limit)
        records += recs
        by = {r["method"]: r for r in recs}
        grid = [r for r in recs if r["method"].startswith("bm3d")]
        best = max(grid, key=lambda r: r["psnr"])
        m = by[model.label]
        tuned = max([m, *(by[t.label] for t in tuned_specs)], key=lambda r: r["psnr"])
        rows.append({
            "tuned": {"method": tuned["method"], "psnr": tuned["psnr"], "ssim": tuned["ssim"],
                      "psnr_margin_db": tuned["psnr"] - best["psnr"],
                      "holds": tuned["psnr"] >= best["psnr"] + 0.5
                      and tuned["ssim"] >= best["ssim"]} if tuned_specs else None,
            "level": level, "n_images": m["n_images"], "noisy_psnr": by["noisy"]["psnr"],
            "model_psnr": m["psnr"], "model_ssim": m["ssim"], "bm3d_best": best["method"],
            "bm3d_psnr": best["psnr"], "bm3d_ssim": best["ssim"],
            "bm3d_best_ssim_in_grid": max(r["ssim"] for r in grid),
            "psnr_margin_db": m["psnr"] - best["psnr"], "ssim_margin": m["ssim"] - best["ssim"],
            "holds": m["psnr"] >= best["psnr"] + 0.5 and m["ssim"] >= best["ssim"],
            "also": {a.label: {"psnr": by[a.label]["psnr"], "ssim": by[a.label]["ssim"],
                               "psnr_margin_db": by[a.label]["psnr"] - best["psnr"]}
                     for a in also}})
    print(f"\n{data} with {noise} speckle (BM3D grid in full: see the JSON)")
    print_table(records, "psnr")
    print(f"{'level':>6}{'model PSNR':>11}{'BM3D PSNR':>10}{'margin':>8}{'model SSIM':>11}"
          f"{'BM3D SSIM':>10}  best BM3D / target (+0.5 dB, SSIM >=)")
    for r in rows:
        print(f"{r['level']:>6g}{r['model_psnr']:>11.2f}{r['bm3d_psnr']:>10.2f}"
              f"{r['psnr_margin_db']:>+8.2f}{r['model_ssim']:>11.3f}{r['bm3d_ssim']:>10.3f}"
              f"  {r['bm3d_best']} / {verdict(r['holds'])}")
        if r["tuned"]:
            t = r["tuned"]
            print(f"{'':>6}{t['psnr']:>11.2f}{'':>10}{t['psnr_margin_db']:>+8.2f}"
                  f"{t['ssim']:>11.3f}{'':>10}  (tuned: {t['method']}) / {verdict(t['holds'])}")
        for label, a in r["also"].items():
            print(f"{'':>6}{a['psnr']:>11.2f}{'':>10}{a['psnr_margin_db']:>+8.2f}"
                  f"{a['ssim']:>11.3f}{'':>10}  ({label})")
    return {"data": data, "noise": noise, "records": records, "per_level": rows}


def leak_check(model: str, data: str) -> dict | None:
    """Test subjects evaluated here that the model's run used for training or validation."""
    from usdenoise.data import load_dataset
    from usdenoise.data.splits import split_dataset

    path = Path(model)
    splits_file = (path if path.is_dir() else path.parent) / "splits.json"
    if model == "default" or not splits_file.is_file():
        return None
    run = json.loads(splits_file.read_text())["splits"]
    seen = {s.split("/", 1)[-1] for part in ("train", "val")
            for s in run[part].get("subjects", [])
            if "/" not in s or s.startswith(data.split(":")[0] + "/")}
    dataset = load_dataset(data, size=256)
    test = {str(dataset.subjects[i]) for i in split_dataset(dataset, seed=0)["test"]}
    overlap = sorted(test & seen)
    print(f"leak check against {splits_file}: {len(overlap)} of {len(test)} test subjects were "
          "seen in training/validation")
    return {"splits": str(splits_file), "test_subjects": len(test), "overlap": overlap}


def section(title: str, part: dict) -> list[str]:
    md = [f"## {title}", "", markdown_table(part["records"], "psnr"), "",
          markdown_table(part["records"], "ssim", digits=3), "",
          "| level | model PSNR | best BM3D PSNR | margin dB | model SSIM | BM3D SSIM | best BM3D "
          "| target |", "|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['level']:g} | {r['model_psnr']:.2f} | {r['bm3d_psnr']:.2f} | "
           f"{r['psnr_margin_db']:+.2f} | {r['model_ssim']:.3f} | {r['bm3d_ssim']:.3f} | "
           f"{r['bm3d_best']} | {verdict(r['holds'])} |" for r in part["per_level"]]
    for r in part["per_level"]:
        extra = ([("tuned: " + r["tuned"]["method"], r["tuned"])] if r["tuned"] else []) + \
            list(r["also"].items())
        md += [f"| {r['level']:g} | {a['psnr']:.2f} ({label}) | {r['bm3d_psnr']:.2f} | "
               f"{a['psnr_margin_db']:+.2f} | {a['ssim']:.3f} | {r['bm3d_ssim']:.3f} | "
               f"{r['bm3d_best']} | {verdict(a.get('holds'))} |" for label, a in extra]
    return md + [""]


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default",
                    help="'default' (shipped model) or a checkpoint path / run folder")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=CHECKPOINT",
                    help="another network reported beside --model (e.g. diconvae=runs/dcae); "
                         "repeatable")
    ap.add_argument("--variant", action="append", default=[],
                    metavar="LABEL=METHOD:KEY=VALUE[;KEY=VALUE]",
                    help="a method at other settings reported beside --model "
                         "(e.g. default_s3=default:smooth=3); repeatable")
    ap.add_argument("--level-grid", default="",
                    help="comma list of speckle levels the model is also told (level=); the "
                         "best by PSNR is reported as the tuned model, like the best BM3D")
    ap.add_argument("--data", default=HC18, help=f"DATA spec (default {HC18})")
    ap.add_argument("--limit", type=int, default=24, help="test images of DATA")
    ap.add_argument("--phantom-limit", type=int, default=12, help="test images of the phantom")
    ap.add_argument("--parts", default="rayleigh,physics,noref",
                    help="comma list of rayleigh, physics, noref")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the machine is shared
    parts = set(args.parts.split(","))
    model = model_method(args.model)
    grid = tuple(float(g) for g in args.level_grid.split(",") if g.strip())
    also = [*map(also_spec, args.also), *map(variant_spec, args.variant)]
    result: dict = {"benchmark": "denoise_quality", "model": args.model, "data": args.data,
                    "limit": args.limit, "machine": machine(), "leak_check": None}
    md = [f"# Denoising quality: `--model {args.model}` vs BM3D (benchmarks/denoise_quality.py)",
          ""]
    if "rayleigh" in parts:
        result["leak_check"] = leak_check(args.model, args.data)
        result["rayleigh"] = compare(args.data, "rayleigh", RAYLEIGH_LEVELS, rayleigh_grid,
                                     model, args.limit, also, grid)
        md += section(f"{args.data}, Rayleigh speckle, {args.limit} test images",
                      result["rayleigh"])
    if "physics" in parts:
        result["physics"] = compare("phantom", "physics", PHYSICS_LEVELS, physics_grid, model,
                                    args.phantom_limit, also, grid)
        md += section(f"phantom, physics speckle, {args.phantom_limit} test images",
                      result["physics"])
    if "noref" in parts:
        methods = [MethodSpec("noisy", {}, "original"), model, *also, bm3d("bm3d default"),
                   bm3d("bm3d log σ=0.155", sigma=0.155)]
        recs = run_evaluation(OUT / "no_reference", data=args.data, methods=methods,
                              limit=args.limit, no_reference=True)
        result["no_reference"] = recs
        print("\nno reference, original test images (EPI against the input)")
        print(f"{'method':<18}{'ENL':>8}{'gCNR':>8}{'EPI':>8}")
        md += ["## No reference: original test images", "",
               "| method | ENL | gCNR | EPI |", "|---|---|---|---|"]
        for r in recs:
            enl, gcnr, epi = (_num(r[k], d) for k, d in (("enl", 2), ("gcnr", 3), ("epi", 3)))
            print(f"{r['method']:<18}{enl:>8}{gcnr:>8}{epi:>8}")
            md.append(f"| {r['method']} | {enl} | {gcnr} | {epi} |")
        md.append("")
    write_json(RESULTS / "denoise_quality.json", result)
    write_text(RESULTS / "denoise_quality.md", "\n".join(md))
    print(f"wrote {RESULTS / 'denoise_quality.json'} and .md")


if __name__ == "__main__":
    main()
