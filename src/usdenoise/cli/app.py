"""Command line: parses arguments and calls library functions; no work happens here."""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from usdenoise import __version__
from usdenoise.cli.options import DATA_HELP, network_device, renamed
from usdenoise.core.errors import UsdenoiseError

app = typer.Typer(
    name="usdenoise",
    help="Speckle removal for ultrasound images, benchmarks, and the downstream check.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (docs/cli.md)
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

ThreadsOpt = Annotated[int | None, typer.Option(
    help="torch CPU threads (default: the machine's cores; 1 per worker with --workers)")]


def _set_threads(threads: int | None) -> int:
    """--threads: torch.set_num_threads for this process; default the cores it may use
    (shared among the processes of a torchrun launch). Returns the number set."""
    import os

    import torch

    from usdenoise.denoise.files import machine_threads

    if threads is not None and threads < 1:
        raise UsdenoiseError(f"--threads {threads}: must be at least 1")
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    count = threads or max(1, machine_threads() // local)
    torch.set_num_threads(count)
    return count


def _version(value: bool) -> None:
    if value:
        print(f"usdenoise {__version__}")
        raise typer.Exit()


@contextmanager
def errors_from_rank0() -> Iterator[None]:
    """Under torchrun every process meets the same error; only rank 0 prints it (exit 2)."""
    from usdenoise.core.distributed import is_main_process

    try:
        yield
    except UsdenoiseError:
        if not is_main_process():
            raise typer.Exit(2) from None
        raise


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="print the version and exit"),
    debug: bool = typer.Option(False, "--debug", help="show the traceback of internal errors "
                                                      "(exit code 1)"),
) -> None:
    """usdenoise command line. Exit codes: 0 done, 2 bad input or usage (including every
    input failing), 1 internal error (traceback with --debug)."""


@app.command("list")
def list_command() -> None:
    """Show the registered denoisers, noise models, metrics, losses and data sets."""
    from usdenoise.cli.listing import families

    out = Console()
    for family, entries in families().items():
        table = Table(title=family, show_lines=False, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        for name, description in entries:
            table.add_row(name, description)
        out.print(table)
        if family == "Denoisers":
            from usdenoise.core.params import STRENGTH

            out.print(f"every denoiser also takes {STRENGTH.describe()}")


@app.command()
def simulate(
    data: str = typer.Argument("phantom", help=DATA_HELP),
    noise: str = typer.Option("rayleigh:0.25", help="noise model and strength, e.g. rayleigh:0.25"),
    out: Path = typer.Option(..., help="output folder (clean/, noisy/, masks/, manifest.json)"),
    size: int = typer.Option(256, help="resize images to SIZE x SIZE (0 keeps their size)"),
    seed: int = typer.Option(0, help="seed of the noise"),
    limit: int | None = typer.Option(None, help="only the first N images"),
    overwrite: bool = typer.Option(False, help="replace what is in --out"),
    threads: ThreadsOpt = None,
) -> None:
    """Add speckle to a data set and write clean/noisy/mask images paired by id."""
    _set_threads(threads)
    from usdenoise.noise.simulate import simulate as run

    manifest = run(data, noise=noise, out_dir=out, size=size or None, seed=seed, limit=limit,
                   overwrite=overwrite)
    console.print(f"wrote {len(manifest['images'])} image pairs to {out}")


@app.command()
def evaluate(
    data: str = typer.Argument("phantom", help=DATA_HELP),
    methods: str = typer.Option("default,bm3d,nlm,lee,srad,median", help="comma-separated "
                                "denoisers (default: the shipped model and the classic filters)"),
    noise: str = typer.Option("rayleigh:0.1,0.25,0.5,0.75", help="noise levels, e.g. gamma:4,8"),
    param: list[str] = typer.Option([], help="method.key=value, repeatable (e.g. lee.window=7)"),
    out: Path = typer.Option(..., help="output folder for results.json/csv/md and examples/"),
    size: int = typer.Option(256, help="resize images to SIZE x SIZE (0 keeps their size)"),
    split: str | None = typer.Option(
        None, help="subject split to evaluate: train, val, test or all "
        "(default: test; all with --no-reference)"),
    limit: int | None = typer.Option(None, help="only the first N test images"),
    seed: int = typer.Option(0, help="seed of the split and the noise"),
    examples: int = typer.Option(2, help="example images per method in examples/"),
    no_reference: bool = typer.Option(False, "--no-reference",
                                      help="no clean images: ENL/CNR/gCNR/SSI/EPI only"),
    segmenter: Path | None = typer.Option(
        None, help="segmenter run trained on originals: Dice/HC on outputs vs inputs"),
    test: str | None = typer.Option(
        None, help="evaluate on this data set (all its images) instead of DATA's test split"),
    strengths: str = typer.Option(
        "0.25,0.5,0.75,1", help="strengths of the blend curves ('none': no curves)"),
    match_reduction: str = typer.Option(
        "0.3", help="common speckle-index reduction (0.3 = -30 %) or 'default'"),
    device: str = typer.Option("auto", help="where the networks (default, network) and the "
                                            "segmenter run: auto, cpu or cuda"),
    overwrite: bool = typer.Option(False, help="replace existing results in --out"),
    workers: int = typer.Option(0, help="image-loading processes (0: load in this one)"),
    threads: ThreadsOpt = None,
) -> None:
    """Benchmark denoisers: every method at every noise level on the same noisy test images.

    Under torchrun the processes share the images (docs/multi_gpu.md)."""
    _set_threads(threads)
    from dataclasses import replace

    from usdenoise.core.distributed import is_main_process
    from usdenoise.core.specs import parse_noise_list
    from usdenoise.denoise.benchmark import EvaluationSettings, parse_methods
    from usdenoise.denoise.benchmark import evaluate as run
    from usdenoise.reporting.tables import markdown_table

    def fraction(text: str, option: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise UsdenoiseError(f"{option} {text!r}: not a number") from None

    grid = ([] if strengths.strip().lower() in ("", "none") else
            [fraction(t.strip(), "--strengths") for t in strengths.split(",") if t.strip()])
    match: float | str = (match_reduction.strip().lower()
                          if match_reduction.strip().lower() == "default"
                          else fraction(match_reduction, "--match-reduction"))
    noises = [f"{name}:{level}" for name, level in parse_noise_list(noise)]
    settings = EvaluationSettings(
        data=data, methods=[replace(m, params=network_device(m.name, m.params, device))
                            for m in parse_methods(methods, param)], noises=noises, split=split,
        size=size or None, limit=limit, seed=seed, examples=examples, no_reference=no_reference,
        segmenter=None if segmenter is None else str(segmenter), test=test, strengths=grid,
        match_reduction=match, device=device, workers=workers,
    )
    with errors_from_rank0():
        records = run(settings, out, overwrite=overwrite)
    if not is_main_process():
        return
    print(markdown_table(records))
    console.print(f"results: {out}/results.md, .json, .csv, curves.json; figures: "
                  f"{out}/examples/, {out}/tradeoff/")
    from usdenoise.cli.report import write_run_report

    if report := write_run_report(out):
        console.print(f"report: {report}")


@app.command()
def denoise(
    inputs: list[Path] = typer.Argument(..., help="image files or folders"),
    out: Path = typer.Option(..., help="output folder (names and formats are kept)"),
    method: str | None = typer.Option(None, help="denoiser name (default: the shipped model)"),
    model: Path | None = typer.Option(None, help="trained checkpoint (.safetensors or run folder)"),
    param: list[str] = typer.Option([], help="key=value parameter of the method, repeatable"),
    recursive: bool = typer.Option(False, help="also denoise images in subfolders"),
    workers: int = typer.Option(1, help="processes for CPU filters"),
    dicom_as: str = typer.Option("dicom", help="write DICOM input back as dicom or png"),
    device: str = typer.Option("auto", help="where a network runs: auto, cpu or cuda (the "
                                            "classic filters run on the CPU)"),
    strict: bool = typer.Option(False, help="stop at the first unreadable file, don't skip it"),
    overwrite: bool = typer.Option(False, help="replace existing output files"),
    skip_existing: bool = typer.Option(
        False, help="continue an earlier denoise run into --out: leave the inputs whose "
        "outputs it wrote"),
    threads: ThreadsOpt = None,
) -> None:
    """Denoise images (PNG, JPEG, TIFF, DICOM incl. cine, MetaImage, .npy).

    Exit code 0 when every input was denoised (also when some were skipped: each is listed),
    2 when none was (every input failed) or on bad options. Under torchrun the processes
    share the files (docs/multi_gpu.md).
    """
    from usdenoise.core.distributed import is_main_process
    from usdenoise.denoise.files import denoise_files
    from usdenoise.denoise.registry import parse_params

    params: dict[str, object] = dict(parse_params(param))
    if model is not None:
        if method not in (None, "network"):
            raise UsdenoiseError("give either --method or --model, not both")
        method, params["checkpoint"] = "network", str(model)
    params = network_device(method or "default", params, device)
    with warnings.catch_warnings():  # skipped files are reported below, one line each
        warnings.filterwarnings("ignore", message="skipped ", category=UserWarning)
        with errors_from_rank0():
            summary = denoise_files(
                inputs, out_dir=out, method=method or "default", params=params,
                recursive=recursive, overwrite=overwrite, skip_existing=skip_existing,
                workers=workers, strict=strict, dicom_as=dicom_as,
                threads=(threads or 1) if workers > 1 else _set_threads(threads),
            )
    if not is_main_process():
        return
    for _source, why in summary.skipped:
        print(f"usdenoise: warning: skipped {why}", file=sys.stderr)
    partial = " (partial run: the skipped inputs are listed above)" if summary.skipped else ""
    earlier = (f"; {len(summary.existing)} already denoised by an earlier run (--skip-existing)"
               if skip_existing else "")
    print(f"denoised {len(summary.written)} file(s) into {out}; "
          f"skipped {len(summary.skipped)} file(s){partial}{earlier}", file=sys.stderr)


# options `train` and `segment train` share (typer reads the Annotated metadata)
DataArg = Annotated[str | None, typer.Argument(help=DATA_HELP + " (default: phantom)")]
PresetOpt = Annotated[str | None, typer.Option(help="network preset: fast (CPU) or paper (GPU)")]
ConfigOpt = Annotated[Path | None,
                      typer.Option(help="TOML file with TrainConfig keys; options win")]
EpochsOpt = Annotated[int | None, typer.Option(help="number of epochs (default 50)")]
RunOpt = Annotated[Path | None, typer.Option(help="run folder for checkpoints and metrics")]
BatchSizeOpt = Annotated[int | None, typer.Option(help="global batch size (default 16)")]
LearningRateOpt = Annotated[float | None, typer.Option(help="Adam learning rate (default 1e-3)")]
ScheduleOpt = Annotated[str | None, typer.Option(help="learning-rate schedule: cosine or none")]
PatienceOpt = Annotated[int | None, typer.Option(help="early stop after N epochs without progress")]
AmpOpt = Annotated[bool | None, typer.Option("--amp/--no-amp", help="bf16 autocast (default: GPU)")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N")]
WorkersOpt = Annotated[int | None, typer.Option(help="data-loading worker processes")]
SeedOpt = Annotated[int | None, typer.Option(help="seed of split, crops, speckle and weights")]
ResumeOpt = Annotated[Path | None, typer.Option(help="continue the run in this folder")]
LimitOpt = Annotated[int | None, typer.Option(help="at most N batches per epoch (quick runs)")]
CacheOpt = Annotated[bool | None, typer.Option(
    "--cache/--no-cache", help="keep decoded images in memory between epochs")]
ProgressOpt = Annotated[bool | None, typer.Option(
    "--progress/--no-progress", help="progress bar (default: when on a terminal)")]
ArchParamOpt = Annotated[list[str] | None, typer.Option(
    help="network option key=value, repeatable")]
# the old spellings, hidden; they still work with a note (renamed so --model has one meaning)
OldArchParamOpt = Annotated[list[str] | None, typer.Option("--model-param", hidden=True)]
OldModelOpt = Annotated[Path | None, typer.Option("--model", hidden=True)]


@app.command()
def train(
    data: DataArg = None,
    config: ConfigOpt = None,
    arch: str | None = typer.Option(None, help="network: diconvae, dncnn or unet"),
    preset: PresetOpt = None,
    arch_param: ArchParamOpt = None,
    model_param: OldArchParamOpt = None,
    loss: str | None = typer.Option(None, help="loss, e.g. l1+msssim or 0.16*l1+0.84*msssim"),
    noise: str | None = typer.Option(None, help="speckle; a range is blind: rayleigh:0.1-0.75"),
    epochs: EpochsOpt = None,
    out: RunOpt = None,
    batch_size: BatchSizeOpt = None,
    crop: int | None = typer.Option(None, help="random crop size in pixels (default 96)"),
    size: int | None = typer.Option(None, help="resize images to SIZE x SIZE when loading"),
    lr: LearningRateOpt = None,
    schedule: ScheduleOpt = None,
    clip_grad: float | None = typer.Option(None, help="clip the gradient norm to this value"),
    patience: PatienceOpt = None,
    amp: AmpOpt = None,
    channels_last: bool | None = typer.Option(None, "--channels-last/--no-channels-last"),
    compile: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile"),
    device: DeviceOpt = None,
    workers: WorkersOpt = None,
    cache: CacheOpt = None,
    seed: SeedOpt = None,
    resume: ResumeOpt = None,
    vgg_weights: Path | None = typer.Option(None, help="local VGG16 weights (perceptual loss)"),
    segmenter: Path | None = typer.Option(None, help="frozen segmenter run for the task and "
                                                     "taskperceptual losses"),
    self_supervised: str | None = typer.Option(
        None, "--self-supervised", metavar="METHOD",
        help="train on noisy images only: r2r or nb2nb (options ss_* in a --config file)"),
    limit: LimitOpt = None,
    progress: ProgressOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train a denoising network; torchrun -m usdenoise train ... runs it on several GPUs."""
    _set_threads(threads)
    from usdenoise.training.config import (
        TrainConfig,
        config_from_dict,
        load_config,
        parse_model_params,
    )
    from usdenoise.training.distributed import is_main_process
    from usdenoise.training.loop import fit
    from usdenoise.training.state import run_config

    given: dict[str, Any] = {
        "data": data, "arch": arch, "preset": preset, "loss": loss, "noise": noise,
        "epochs": epochs, "out": out and str(out), "batch_size": batch_size, "crop": crop,
        "image_size": size, "lr": lr, "schedule": schedule, "clip_grad": clip_grad,
        "patience": patience, "amp": amp, "channels_last": channels_last, "compile": compile,
        "device": device, "workers": workers, "cache": cache, "seed": seed,
        "resume": resume and str(resume),
        "vgg_weights": vgg_weights and str(vgg_weights), "limit": limit, "progress": progress,
        "segmenter": segmenter and str(segmenter), "self_supervised": self_supervised,
    }
    given = {key: value for key, value in given.items() if value is not None}
    if arch_param := renamed("train", "--arch-param", "--model-param", arch_param, model_param):
        given["model"] = parse_model_params(arch_param)
    if config is not None:
        settings = load_config(config, **given)
    elif resume is not None:  # the run's own settings, with what was given on top
        settings = config_from_dict({**run_config(resume), **given}, where="command line")
    else:
        settings = config_from_dict(given, where="command line")
    if resume is None and out is None and settings.out == TrainConfig().out:
        raise UsdenoiseError("train: give the run folder with --out RUN (or --resume RUN)")
    best = fit(settings)
    if is_main_process():
        console.print(f"best model: {best}  (metrics: {best.parent / 'metrics.csv'})")
        from usdenoise.cli.report import write_run_report

        if report := write_run_report(best.parent):
            console.print(f"report: {report}")


@app.command()
def demo(
    out: Path = typer.Option(Path("usdenoise-demo"), help="output folder"),
    quick: bool = typer.Option(False, help="smaller images, fewer levels: under a minute"),
    train: bool = typer.Option(False, help="also train a fast DiConvAE on phantoms and include it"),
    overwrite: bool = typer.Option(False, help="replace the results of an earlier demo in --out"),
    device: str = typer.Option("auto", help="where the networks run and train: auto, cpu or "
                                            "cuda"),
    threads: ThreadsOpt = None,
) -> None:
    """The main job on the built-in phantom: simulate, denoise, evaluate, show the table."""
    _set_threads(threads)
    from usdenoise.cli.demo import run_demo
    from usdenoise.reporting.tables import markdown_table

    records, notes = run_demo(out, quick=quick, train=train, overwrite=overwrite, device=device)
    print(markdown_table(records))
    for note in notes:
        console.print(f"note: {note}")
    console.print(f"results: {out}/results.md, .json, .csv; figures: {out}/examples/")
    if (report := out / "report.html").is_file():
        print(f"report: {report}")


segment_app = typer.Typer(help="Segmentation (SegNet, U-Net) and head circumference: "
                            "train, evaluate.", no_args_is_help=True)
app.add_typer(segment_app, name="segment")


def _denoise_choice(denoise: str | None, denoise_model: Path | None, params: list[str],
                    option: str) -> tuple[str | None, dict[str, str]]:
    from usdenoise.denoise.registry import parse_params

    given = dict(parse_params(params))
    if denoise_model is not None:
        if denoise not in (None, "network"):
            raise UsdenoiseError(f"give either --denoise or {option}, not both")
        return "network", {**given, "checkpoint": str(denoise_model)}
    if given and denoise is None:
        raise UsdenoiseError("--denoise-param given without --denoise")
    return denoise, given


@segment_app.command("train")
def segment_train(
    data: DataArg = None,
    arch: str | None = typer.Option(None, help="segmenter: unet (MONAI, default) or segnet"),
    preset: PresetOpt = None,
    arch_param: ArchParamOpt = None,
    model_param: OldArchParamOpt = None,
    denoise: str | None = typer.Option(None, help="denoiser applied to every image first"),
    denoise_model: Path | None = typer.Option(None, help="denoiser checkpoint applied to every "
                                                         "image first"),
    model: OldModelOpt = None,
    denoise_param: list[str] = typer.Option([], help="denoiser parameter key=value"),
    noise: str | None = typer.Option(None, help="speckle added first (seeded per image), "
                                                "e.g. rayleigh:0.5; default none"),
    num_classes: int | None = typer.Option(None, help="classes incl. background (checked "
                                                      "against the data set)"),
    loss: str | None = typer.Option(None, help="dice+ce (default), dice or ce"),
    config: ConfigOpt = None,
    epochs: EpochsOpt = None,
    out: RunOpt = None,
    batch_size: BatchSizeOpt = None,
    size: int | None = typer.Option(None, help="resize images to SIZE x SIZE (default 128)"),
    crop: int | None = typer.Option(None, help="random crop in pixels (default: whole image)"),
    lr: LearningRateOpt = None,
    schedule: ScheduleOpt = None,
    patience: PatienceOpt = None,
    amp: AmpOpt = None,
    device: DeviceOpt = None,
    workers: WorkersOpt = None,
    cache: CacheOpt = None,
    seed: SeedOpt = None,
    resume: ResumeOpt = None,
    limit: LimitOpt = None,
    progress: ProgressOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train a segmenter (Dice + cross-entropy) on original, speckled or denoised images."""
    _set_threads(threads)
    from usdenoise.training.config import parse_model_params, segment_train_config
    from usdenoise.training.distributed import is_main_process
    from usdenoise.training.loop import fit

    denoise_model = renamed("segment train", "--denoise-model", "--model", denoise_model, model)
    method, params = _denoise_choice(denoise, denoise_model, denoise_param, "--denoise-model")
    given: dict[str, Any] = {
        "data": data, "arch": arch, "preset": preset, "noise": noise, "denoise": method,
        "num_classes": num_classes, "loss": loss, "epochs": epochs,
        "out": out and str(out), "batch_size": batch_size, "image_size": size, "crop": crop,
        "lr": lr, "schedule": schedule, "patience": patience, "amp": amp, "device": device,
        "workers": workers, "cache": cache, "seed": seed, "limit": limit, "progress": progress,
        "resume": resume and str(resume),
    }
    given = {key: value for key, value in given.items() if value is not None}
    if params:
        given["denoise_params"] = params
    if arch_param := renamed("segment train", "--arch-param", "--model-param", arch_param,
                             model_param):
        given["model"] = parse_model_params(arch_param)
    if resume is None and out is None:
        raise UsdenoiseError("segment train: give the run folder with --out RUN (or --resume RUN)")
    settings = segment_train_config(given, config=config, resume=resume)
    best = fit(settings)
    if is_main_process():
        console.print(f"best model: {best}  (metrics: {best.parent / 'metrics.csv'})")
        from usdenoise.cli.report import write_run_report

        if report := write_run_report(best.parent):
            console.print(f"report: {report}")


@segment_app.command("evaluate")
def segment_evaluate(
    data: str = typer.Argument("phantom", help=DATA_HELP),
    segmenter: Path | None = typer.Option(None, help="segmenter run folder or checkpoint "
                                                     "(required)"),
    model: OldModelOpt = None,
    out: Path = typer.Option(..., help="folder for results.json/csv/md, masks/, overlays/"),
    denoise: str | None = typer.Option(None, help="denoiser applied to every image first"),
    denoise_model: Path | None = typer.Option(None, help="denoiser checkpoint applied first"),
    denoise_param: list[str] = typer.Option([], help="denoiser parameter key=value"),
    noise: str | None = typer.Option(None, help="speckle added first, e.g. rayleigh:0.5"),
    split: str | None = typer.Option(None, help="train, val, test (the run's split) or all "
                                                "(default: test; all with --test)"),
    size: int | None = typer.Option(None, help="load images at SIZE x SIZE (default: own size)"),
    limit: int | None = typer.Option(None, help="only the first N images"),
    seed: int | None = typer.Option(None, help="speckle/split seed (default: the run's)"),
    examples: int = typer.Option(4, help="coloured overlays to write"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    classes: str | None = typer.Option(
        None, help="model classes to evaluate, e.g. head (others count as background); "
        "default: every class matched by name to the data's (head ~ fetal_head)"),
    postprocess: str = typer.Option("none", help="clean the prediction first: none, largest "
                                                 "(largest region per class, holes filled) or "
                                                 "ellipse (head replaced by its fitted ellipse)"),
    test: str | None = typer.Option(
        None, help="evaluate on this data set (all its images) instead of DATA, e.g. a HC18 "
        "model on psfhs:PATH"),
    overwrite: bool = typer.Option(False, help="replace existing results in --out"),
    threads: ThreadsOpt = None,
) -> None:
    """Segment images with a trained model: Dice, IoU, HD95, area bias, HC error."""
    _set_threads(threads)
    from usdenoise.segmentation.evaluate import SegmentEvaluation, evaluate_segmenter

    segmenter = renamed("segment evaluate", "--segmenter", "--model", segmenter, model)
    if segmenter is None:
        raise UsdenoiseError("segment evaluate: give the segmenter run with --segmenter RUN")
    method, params = _denoise_choice(denoise, denoise_model, denoise_param, "--denoise-model")
    settings = SegmentEvaluation(
        data=data, model=str(segmenter), noise=noise, denoise=method, denoise_params=params,
        split=split, size=size, limit=limit, seed=seed, examples=examples, device=device,
        classes=classes, postprocess=postprocess, test=test)
    records, _ = evaluate_segmenter(settings, out, overwrite=overwrite)
    def show(value: float | None, spec: str = ".4f") -> str:
        return "–" if value is None else format(value, spec)

    for r in records:
        print(f"{r['method']} on {r['data']} ({r['n_images']} images): dice {show(r['dice'])}, "
              f"iou {show(r['iou'])}, hd95 {show(r['hd95'], '.3f')} {r['hd95_unit']}, area bias "
              f"{show(r['area_bias'], '+.4f')}, HC abs error {show(r['hc_abs_error_mm'], '.2f')} "
              f"mm (missing {r['n_missing_hc']})")
    console.print(f"results: {out}/results.md, .json, .csv; masks: {out}/masks/")


from usdenoise.cli.study import study_command  # noqa: E402  (its own module: many options)

app.command("study")(study_command)

from usdenoise.cli.report import report_command  # noqa: E402  (its own module)

app.command("report")(report_command)

from usdenoise.cli.inspect import inspect_command  # noqa: E402  (its own module)

app.command("inspect")(inspect_command)


# ---- commands added by later modules go above this line ----


def _reflow(doc: str) -> str:
    """A docstring with each paragraph on one line: typer's rich help keeps the source's line
    breaks, which break the text mid-sentence at any terminal width."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))


for _info in (*app.registered_commands, *segment_app.registered_commands):
    if _info.help is None and _info.callback is not None and _info.callback.__doc__:
        _info.help = _reflow(_info.callback.__doc__)

COMPLETE_VAR = "_USDENOISE_COMPLETE"  # the shell-completion protocol typer and click share
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _named_shell_completion(args: list[str]) -> str | None:
    """The script for `--show-completion SHELL` (typer's flag only detects the shell it runs
    in, and would ignore a name after it); None when `args` is something else."""
    words = args[0].split("=", 1) + args[1:] if args else []
    if len(words) != 2 or words[0] not in ("--show-completion", "--install-completion"):
        return None
    option, shell = words[0], words[1].strip().lower()
    if option == "--install-completion":
        raise UsdenoiseError(f"--install-completion {words[1]}: takes no shell name, it "
                             "installs for the shell it runs in; for another shell save the "
                             "output of `usdenoise --show-completion SHELL`")
    if shell not in SHELLS:
        raise UsdenoiseError(f"--show-completion {words[1]}: choose {', '.join(SHELLS)}")
    from typer.completion import get_completion_script

    return get_completion_script(prog_name="usdenoise", complete_var=COMPLETE_VAR, shell=shell)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, line: str | None = None) -> str:
    """Warnings as the CLI's errors are shown: one line, no source path or code line."""
    kind = "" if category is UserWarning else f" ({category.__name__})"
    return f"usdenoise: warning{kind}: {' '.join(str(message).split())}\n"


@contextmanager
def _cli_warnings(debug: bool) -> Iterator[None]:
    """One-line warnings for the command's run (Python's own, with the source, under --debug).
    Only the text changes (`formatwarning`): where warnings go, and tools that record them,
    stay as they are."""
    formatted = warnings.formatwarning
    if not debug:
        warnings.formatwarning = _one_line_warning
    try:
        yield
    finally:
        warnings.formatwarning = formatted


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (`kill`, a batch scheduler's stop) ends the command as a failure does, exit 143:
    the staged output, the folder lock and the temporary folders are removed on the way out,
    where the signal's default action would leave them behind. Not under torchrun: its agent
    stops the siblings of a failed process with SIGTERM, and a sibling that unwound would
    wait at its next collective for a peer that is gone."""
    import os
    import signal
    import threading

    if (threading.current_thread() is not threading.main_thread()
            or os.environ.get("WORLD_SIZE", "1") != "1"):
        yield
        return

    owner = os.getpid()

    def stop(signum: int, frame: object) -> None:
        if os.getpid() != owner:  # a forked data-loading worker: end it as before, silently
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        print("usdenoise: stopped by SIGTERM; nothing more is written", file=sys.stderr)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    """Entry point. Exit codes: 0 done; 2 bad input or usage, one line on stderr (every input
    failing included); 1 internal error, one line (the traceback with `usdenoise --debug`);
    143 stopped by SIGTERM, with what a failure leaves: nothing staged or half-written."""
    args = sys.argv[1:] if argv is None else list(argv)
    with _cli_warnings("--debug" in args), _sigterm_unwinds():
        _main(args)


def _main(args: list[str]) -> None:
    from typer._click.exceptions import ClickException, UsageError

    debug = "--debug" in args
    try:
        if (script := _named_shell_completion(args)) is not None:
            print(script)
            sys.exit(0)
        code = app(args=args, prog_name="usdenoise", standalone_mode=False)
    except UsageError as exc:  # unknown option, bad value: one line, not typer's usage box
        command = f" {exc.ctx.command_path}" if exc.ctx is not None else ""
        print(f"usdenoise: error: {' '.join(exc.format_message().split())} (see "
              f"`usdenoise{command.removeprefix(' usdenoise')} --help`)", file=sys.stderr)
        sys.exit(2)
    except ClickException as exc:
        print(f"usdenoise: error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:  # `usdenoise list | head`: the reader left; end quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        sys.exit(141)  # as a shell reports a process ended by SIGPIPE
    except UsdenoiseError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"usdenoise: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        if debug:
            raise
        text = " ".join(str(exc).split())[:200]
        print(f"usdenoise: internal error: {type(exc).__name__}: {text} (a bug; "
              "`usdenoise --debug ...` shows the traceback)", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)  # as typer's standalone mode does
