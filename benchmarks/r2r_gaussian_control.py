"""Control for r2r: the same phantoms and network as selfsupervised_phantom.py, but with the
noise r2r's derivation assumes, Gaussian with a known covariance.

    nice -n 19 .venv/bin/python benchmarks/r2r_gaussian_control.py [--epochs 30] [--limit 20]
        [--stats 0.099,1.42,2.59] [--work benchmarks/results/r2r_gaussian_control]

With physics speckle r2r DnCNN ends below its input (docs/training.md). Here each of the 200
phantoms (128 px) becomes `ref = 0.3 + 0.4·B(x)` (B: the physics PSF without speckle; the
offset and scale keep `ref + n` inside [0, 1], so almost nothing is clipped) and
`noisy = ref + n`, with `n` Gaussian noise of the speckle's covariance
(`selfsupervised.speckle_noise`) at `--stats` level,axial,lateral (default: what r2r
estimated on the physics phantoms). Noisy and ref go to WORK/sim as 16-bit PNGs. Then
`usdenoise train folder:WORK/sim/noisy --self-supervised r2r` with the same options as the
phantom check (DnCNN fast, 96-px crops, batch 16, seed 0) and the statistics given in a
--config file: once with the true statistics and once with axial and lateral 8 % narrower
(`--mismatch`), to see how much a wrong grain estimate costs. The test split is scored
against ref, beside a Gaussian blur at the best σ on those images (a yardstick). Prints a
table and writes benchmarks/results/<--work's name>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from usdenoise.data import load_dataset
from usdenoise.denoise import make_denoiser
from usdenoise.io import read_image, write_image
from usdenoise.metrics import psnr, ssim
from usdenoise.noise import make_noise
from usdenoise.training.tasks.selfsupervised import SpeckleStats, speckle_noise

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, write_json  # noqa: E402
from selfsupervised_phantom import test_ids, usdenoise  # noqa: E402

BLUR_SIGMAS = (1.0, 2.0, 3.0, 4.0, 5.0)


def simulate(sim: Path, stats: SpeckleStats) -> float:
    """Write WORK/sim/{noisy,ref}; returns the share of pixels `ref + n` put outside [0, 1]."""
    physics = make_noise("physics:0.1")
    data = load_dataset("phantom:200", size=128)
    (sim / "noisy").mkdir(parents=True, exist_ok=True)
    (sim / "ref").mkdir(parents=True, exist_ok=True)
    clipped = 0.0
    for index in range(len(data)):
        sample = data[index]
        x = sample["image"][None].float()
        ref = 0.3 + 0.4 * physics.noise_free(x)
        y = ref + speckle_noise(tuple(x.shape), stats,
                                generator=torch.Generator().manual_seed(index))
        clipped += float(((y < 0) | (y > 1)).float().mean())
        write_image(sim / "noisy" / f"{sample['id']}.png", y.clamp(0, 1)[0], bit_depth=16)
        write_image(sim / "ref" / f"{sample['id']}.png", ref[0], bit_depth=16)
    return clipped / len(data)


def score(denoiser, sim: Path, ids: list[str]) -> dict[str, float]:
    values: dict[str, list[float]] = {"psnr": [], "ssim": [], "input_psnr": []}
    for image_id in ids:
        noisy = read_image(sim / "noisy" / f"{image_id}.png")[None]
        ref = read_image(sim / "ref" / f"{image_id}.png")[None]
        out = denoiser.denoise(noisy).float().clamp(0, 1)
        values["psnr"].append(float(psnr(out, ref)))
        values["ssim"].append(float(ssim(out, ref)))
        values["input_psnr"].append(float(psnr(noisy, ref)))
    return {key: round(sum(v) / len(v), 3) for key, v in values.items()}


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--limit", type=int, default=20, help="batches per epoch")
    parser.add_argument("--stats", default="0.099,1.42,2.59", help="level,axial,lateral")
    parser.add_argument("--mismatch", type=float, default=0.92,
                        help="the second run's grain widths as a share of the true ones")
    parser.add_argument("--work", type=Path, default=RESULTS / "r2r_gaussian_control")
    args = parser.parse_args()
    level, axial, lateral = (float(v) for v in args.stats.split(","))
    work: Path = args.work
    sim = work / "sim"
    clipped = simulate(sim, SpeckleStats(level, axial, lateral))
    runs: dict[str, dict] = {}
    for name, share in (("r2r, true statistics", 1.0),
                        (f"r2r, grain x {args.mismatch:g}", args.mismatch)):
        run = work / ("r2r" if share == 1.0 else "r2r_mismatch")
        config = run.with_suffix(".toml")
        config.write_text(f"ss_level = {level}\nss_axial = {axial * share:.4g}\n"
                          f"ss_lateral = {lateral * share:.4g}\n")
        command = ["train", f"folder:{sim / 'noisy'}", "--self-supervised", "r2r", "--config",
                   str(config), "--size", "128", "--arch", "dncnn", "--preset", "fast",
                   "--epochs", str(args.epochs), "--limit", str(args.limit), "--batch-size",
                   "16", "--crop", "96", "--device", "cpu", "--seed", "0", "--no-progress",
                   "--out", str(run)]
        seconds = usdenoise(*command)
        ids = test_ids(run)
        net = make_denoiser("network", checkpoint=str(run / "model_best.safetensors"),
                            device="cpu")
        runs[name] = {"seconds": round(seconds, 1), "command": "usdenoise " + " ".join(command),
                      **score(net, sim, ids)}
    blurs = {sigma: score(make_denoiser("gaussian", sigma=sigma), sim, ids)
             for sigma in BLUR_SIGMAS}
    best = max(blurs, key=lambda sigma: blurs[sigma]["psnr"])
    runs[f"gaussian blur σ={best:g} px"] = {"seconds": 0.0, **blurs[best]}
    print(f"\n{len(ids)} test phantoms, Gaussian noise of the speckle's covariance "
          f"(level {level}, widths {axial} x {lateral} px), {clipped:.4%} of pixels clipped")
    print(f"{'run':<26} {'PSNR':>6} {'SSIM':>6} {'input':>6}")
    for name, entry in runs.items():
        print(f"{name:<26} {entry['psnr']:6.2f} {entry['ssim']:6.3f} {entry['input_psnr']:6.2f}")
    write_json(RESULTS / f"{work.name}.json",
               {"stats": {"level": level, "axial": axial, "lateral": lateral},
                "clipped_share": clipped, "epochs": args.epochs, "limit": args.limit,
                "test_images": len(ids), "runs": runs, "machine": machine()})


if __name__ == "__main__":
    main()
