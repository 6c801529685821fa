"""`usdenoise study`: the command-line face of `usdenoise.study.run.run_study`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from usdenoise.cli.options import DATA_HELP
from usdenoise.core.errors import UsdenoiseError


def _comma_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsdenoiseError(f"{text!r}: empty list")
    return items


def _numbers(text: str, option: str, kind: type = float) -> list:
    try:
        return [kind(t) for t in _comma_list(text) or []]
    except ValueError:
        raise UsdenoiseError(f"{option} {text!r}: expected comma-separated numbers") from None


def study_command(
    data: str = typer.Argument("phantom", help=DATA_HELP),
    out: Path = typer.Option(..., help="study folder: study.json/csv/md, figures/, runs/"),
    quick: bool = typer.Option(False, help="reduced study: 64 px, a subset, few epochs "
                                           "(minutes on a CPU)"),
    arms: str | None = typer.Option(None, help="comma list of arms (default: all; see README)"),
    inputs: str | None = typer.Option(None, help="comma list: none (original images) and "
                                                 "speckle specs (default none,rayleigh:0.25,"
                                                 "rayleigh:0.5; quick: none,rayleigh:0.5)"),
    protocols: str = typer.Option("A,B", help="A (segmenter trained on originals), B "
                                              "(trained on processed images), or both"),
    tune_strength: bool = typer.Option(False, help="choose α (denoised/input blend) per arm "
                                                   "and input by validation Dice"),
    strengths: str = typer.Option("0,0.25,0.5,0.75,1", help="α values searched"),
    segmenter: Path | None = typer.Option(None, help="protocol A segmenter run to reuse "
                                                     "(trained on original images)"),
    segmenter_arch: str = typer.Option("unet", help="unet (MONAI) or segnet"),
    segmenter_param: list[str] = typer.Option([], help="segmenter option key=value"),
    segmenter_epochs: int | None = typer.Option(None, help="default 40 (quick 20)"),
    denoiser_epochs: int | None = typer.Option(None, help="DiConvAE arms; default 40 "
                                                          "(quick 25)"),
    denoiser_param: list[str] = typer.Option([], help="DiConvAE option key=value (default "
                                                      "on CPU: shuffle=2)"),
    denoiser_noise: str = typer.Option("rayleigh:0.05-0.6", help="speckle the DiConvAE "
                                                                 "arms train on"),
    vgg_weights: Path | None = typer.Option(None, help="local VGG16 weights: adds the "
                                                       "L2/L1 + perceptual arms"),
    size: int | None = typer.Option(None, help="network image size (default 128, quick 64)"),
    max_images: str | None = typer.Option(None, help="train,val,test subset sizes "
                                                     "(quick: 96,24,32)"),
    batch_size: int = typer.Option(16, help="batch size of every training"),
    seed: int = typer.Option(0, help="seed of split, speckle, training and bootstrap"),
    resamples: int = typer.Option(2000, help="bootstrap resamples"),
    examples: int = typer.Option(3, help="example overlay figures"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    workers: int | None = typer.Option(None, help="processes for the classic filters "
                                                  "(default: the CPU count)"),
    test: str | None = typer.Option(None, help="measure the test rows on this data set (all "
                                               "its images) instead of DATA's test split; "
                                               "models trained on DATA"),
    overwrite: bool = typer.Option(False, help="replace an existing study.json (runs reused)"),
) -> None:
    """Does denoising help segmentation? Arms x inputs x protocols, with subject-level
    confidence intervals and paired tests; optional strength tuning by Dice."""
    from usdenoise.study.run import StudySettings, run_study
    from usdenoise.training.config import parse_model_params

    limits = None
    if max_images is not None:
        limits = tuple(_numbers(max_images, "--max-images", int))
        if len(limits) != 3 or min(limits) < 1:
            raise UsdenoiseError(f"--max-images {max_images!r}: give train,val,test counts >= 1")
    settings = StudySettings(
        data=data, quick=quick, arms=_comma_list(arms), inputs=_comma_list(inputs),
        protocols=[p.upper() for p in _comma_list(protocols) or []], size=size,
        segmenter_arch=segmenter_arch, segmenter_options=parse_model_params(
            segmenter_param, option="--segmenter-param"),
        segmenter_epochs=segmenter_epochs, denoiser_epochs=denoiser_epochs,
        denoiser_noise=denoiser_noise,
        denoiser_options=(parse_model_params(denoiser_param, option="--denoiser-param")
                          if denoiser_param else None),
        segmenter=str(segmenter) if segmenter else None,
        vgg_weights=str(vgg_weights) if vgg_weights else None, tune_strength=tune_strength,
        strengths=_numbers(strengths, "--strengths"), max_images=limits,
        batch_size=batch_size, seed=seed, resamples=resamples, examples=examples, device=device,
        workers=workers, test=test)
    console = Console(stderr=True)
    document = run_study(settings, out, log=console.print, overwrite=overwrite)
    for name, target in document["targets"].items():
        console.print(f"{name}: {'met' if target['met'] else 'not met'} ({target['target']})")
    console.print(f"results: {out}/study.md, study.json, study.csv; figures: {out}/figures/")
    from usdenoise.cli.report import write_run_report

    if report := write_run_report(out):
        console.print(f"report: {report}")
