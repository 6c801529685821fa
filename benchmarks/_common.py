"""Helpers shared by benchmarks/classic.py, denoise_speed.py and denoise_quality.py."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
#: the project's shared HC18 copy beside the checkout (../shared/data/hc18); --data overrides
HC18 = "hc18:" + str(Path(__file__).resolve().parents[2] / "shared" / "data" / "hc18")
RAYLEIGH_LEVELS = (0.10, 0.25, 0.50, 0.75)


def also_spec(item: str) -> Any:
    """`LABEL=CHECKPOINT` (an --also option) -> that network on the CPU, labelled."""
    from usdenoise.denoise.benchmark import MethodSpec

    label, _, path = item.partition("=")
    return MethodSpec("network", {"checkpoint": path, "device": "cpu"}, label)


def variant_spec(item: str) -> Any:
    """`LABEL=METHOD:KEY=VALUE[;KEY=VALUE]` (a --variant option) -> a labelled MethodSpec."""
    from usdenoise.denoise.benchmark import MethodSpec

    label, _, rest = item.partition("=")
    method, _, settings = rest.partition(":")
    if not label or not method:
        raise SystemExit(f"--variant {item!r}: expected LABEL=METHOD:KEY=VALUE[;KEY=VALUE]")
    return MethodSpec(method, dict(kv.split("=", 1) for kv in settings.split(";") if kv), label)


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load average says how shared the CPU was)."""
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "niceness": os.nice(0),
    }


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def seconds_per_call(fn: Callable[[], Any], repeats: int) -> dict[str, float]:
    """One warm-up call, then `repeats` timed calls: median and fastest wall seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times)}


def speckled_images(count: int, *, size: int = 256, level: float = 0.25) -> torch.Tensor:
    """`count` phantom images at size^2 with Rayleigh speckle (seed 0): [count, 1, size, size]."""
    from usdenoise.data import load_dataset
    from usdenoise.noise.speckle import make_noise

    dataset = load_dataset(f"phantom:{count}", size=size)
    clean = torch.stack([dataset[i]["image"].float() for i in range(count)])
    return make_noise(f"rayleigh:{level}")(clean, generator=torch.Generator().manual_seed(0))


def run_evaluation(
    out_dir: Path, *, data: str, methods: Sequence[Any], noises: Sequence[str] = (),
    limit: int | None, no_reference: bool = False,
) -> list[dict]:
    """`usdenoise.denoise.benchmark.evaluate` on the test split (subject split, seed 0) -> records.

    `methods` are `MethodSpec`s; the evaluator adds the same seeded noise for every method and
    writes results.json/csv/md, per_image.csv and example images to `out_dir`.
    """
    from usdenoise.denoise.benchmark import EvaluationSettings, evaluate

    settings = EvaluationSettings(
        data=data, methods=list(methods), noises=list(noises) or ["rayleigh:0.25"],
        split="test", size=256, limit=limit, seed=0, examples=2, no_reference=no_reference,
    )
    return evaluate(settings, out_dir, overwrite=True)


def pivot(records: list[dict], key: str) -> tuple[list[str], list[str], dict[tuple, float]]:
    """(methods in order, column labels, {(method, column): value}) for one metric."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    columns = list(dict.fromkeys(_column(r) for r in records))
    cells = {(r["method"], _column(r)): r.get(key) for r in records}
    return methods, columns, cells


def _column(record: dict) -> str:
    if record.get("noise") is None:
        return "original"
    return f"{record['noise']} {record['level']:g}"


def markdown_table(records: list[dict], key: str, *, digits: int = 2) -> str:
    """Methods down, noise levels across; the best value per column in bold."""
    methods, columns, cells = pivot(records, key)
    lines = [f"| {key} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    best = {}
    for c in columns:
        values = [cells.get((m, c)) for m in methods]
        finite = [v for v in values if v is not None]
        best[c] = max(finite) if finite else None
    for m in methods:
        row = []
        for c in columns:
            v = cells.get((m, c))
            text = "–" if v is None else f"{v:.{digits}f}"
            row.append(f"**{text}**" if v is not None and v == best[c] else text)
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def print_table(records: list[dict], key: str, *, digits: int = 2) -> None:
    methods, columns, cells = pivot(records, key)
    width = max(len(m) for m in methods) + 2
    print(f"{key:<{width}}" + "".join(f"{c:>16}" for c in columns))
    for m in methods:
        values = [cells.get((m, c)) for c in columns]
        print(f"{m:<{width}}" + "".join(
            f"{'–':>16}" if v is None else f"{v:>16.{digits}f}" for v in values))


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def model_method(model: str, *, device: str = "cpu"):
    """`--model` -> MethodSpec: `default` (the shipped model) or a checkpoint path/run folder."""
    from usdenoise.denoise.benchmark import MethodSpec

    if model == "default":
        return MethodSpec("default", {"device": device}, "default")
    return MethodSpec("network", {"checkpoint": model, "device": device}, "model")
