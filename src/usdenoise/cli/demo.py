"""`usdenoise demo`: the whole benchmark on the built-in phantom, in a few minutes on a CPU."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from usdenoise.cli.options import network_device
from usdenoise.cli.report import write_run_report
from usdenoise.denoise.benchmark import EvaluationSettings, MethodSpec, evaluate


@dataclass(frozen=True)
class DemoPlan:
    """How big the demo is; `quick` trades images and size for a run under a minute."""

    phantoms: int
    size: int
    noises: tuple[str, ...]
    methods: tuple[str, ...]
    train_epochs: int


FULL = DemoPlan(
    phantoms=40, size=256, noises=("rayleigh:0.25", "rayleigh:0.5", "physics:0.1"),
    methods=("default", "bm3d", "nlm", "lee", "srad", "median"), train_epochs=6,
)
QUICK = DemoPlan(
    phantoms=24, size=128, noises=("rayleigh:0.25", "rayleigh:0.5"),
    methods=("default", "bm3d", "nlm", "lee", "srad", "median"), train_epochs=3,
)


def _unavailable(name: str) -> str | None:
    """Why a method cannot run here (bm3d is an optional extra, the default model may be
    missing from a dev build), or None when it can."""
    from usdenoise.core.errors import UsdenoiseError
    from usdenoise.denoise.registry import make_denoiser

    try:
        make_denoiser(name)
    except UsdenoiseError as exc:
        return str(exc)
    return None


def train_demo_model(out_dir: Path, plan: DemoPlan, *, device: str = "auto") -> Path:
    """A fast DiConvAE trained from scratch on phantoms (the `--train` option)."""
    from usdenoise.training.config import TrainConfig
    from usdenoise.training.loop import fit

    config = TrainConfig(
        data=f"phantom:{plan.phantoms * 4}", out=str(out_dir / "trained-model"),
        arch="diconvae", preset="fast", model={"shuffle": 2, "residual": "speckle"},
        loss="l1+msssim", noise="rayleigh:0.1-0.75", epochs=plan.train_epochs,
        batch_size=16, crop=64, image_size=plan.size, seed=0, device=device,
    )
    return Path(fit(config))


def _prepare_out_dir(out_dir: Path, *, train: bool, overwrite: bool) -> None:
    """Refuse an earlier demo's folder without overwrite (before minutes of training); with it,
    remove the earlier demo's trained model, which training would otherwise refuse to replace."""
    import shutil

    from usdenoise.core.errors import UsdenoiseError

    run_dir = out_dir / "trained-model"
    if not overwrite:
        for earlier in (out_dir / "results.json", run_dir if train else None):
            if earlier is not None and earlier.exists():
                raise UsdenoiseError(f"{earlier}: from an earlier demo (use --overwrite)")
    elif train and run_dir.exists():
        markers = ("model.json", "train_state.safetensors")
        if not any((run_dir / name).is_file() for name in markers):
            raise UsdenoiseError(f"{run_dir}: exists and is not a training run; not replacing it")
        shutil.rmtree(run_dir)


def run_demo(out_dir: Path, *, quick: bool = False, train: bool = False,
             overwrite: bool = False, device: str = "auto") -> tuple[list[dict], list[str]]:
    """Simulate, denoise with every method, evaluate, write report.html; returns (records,
    notes). An earlier demo's results in `out_dir` are refused unless `overwrite`; `device`
    is where the networks run (and the `train` model trains)."""
    plan = QUICK if quick else FULL
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, train=train, overwrite=overwrite)
    notes: list[str] = []
    names = []
    for name in plan.methods:
        reason = _unavailable(name)
        if reason is None:
            names.append(name)
        else:  # the error says what to install or train
            notes.append(f"{name} skipped: {reason}")
    methods = [MethodSpec("noisy", {}, "noisy")] + [
        MethodSpec(n, network_device(n, {}, device), n) for n in names]
    if train:
        start = time.perf_counter()
        run = train_demo_model(out_dir, plan, device=device)
        methods.append(MethodSpec("network", network_device("network", {"checkpoint": str(run)},
                                                            device), "diconvae (trained now)"))
        notes.append(f"trained a fast DiConvAE on phantoms in {time.perf_counter() - start:.0f} s")
    settings = EvaluationSettings(
        data=f"phantom:{plan.phantoms}", methods=methods, noises=list(plan.noises),
        size=plan.size, seed=0, examples=2,
    )
    records = evaluate(settings, out_dir, overwrite=overwrite)
    write_run_report(out_dir)  # out_dir/report.html: the page a person opens
    return records, notes
