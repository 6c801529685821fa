"""One self-contained report.html per run folder: `evaluate`/`demo`, `train` and `study`.

`build_report(DIR)` reads what the run wrote there — results.json (+ per_image.csv,
splits.json, examples/) for evaluate and demo, metrics.csv + model.json for a training run,
study.json (+ per_image.csv, figures/) for a study — and writes DIR/report.html atomically:
a header with the run's facts, the summary table with ↑/↓ per metric and the best value marked
where it beats the baseline (`noisy`, or the study's `none` arm), plots, and images, all
embedded as data: URIs (see `usdenoise.reporting.html_page`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from usdenoise import __version__
from usdenoise.core.errors import UsdenoiseError, one_line
from usdenoise.core.files import write_text_atomic
from usdenoise.reporting.html_images import example_grid
from usdenoise.reporting.html_page import (
    Page,
    compact,
    esc,
    fmt,
    img,
    meta_list,
    number,
    plot,
    recorded_command,
    results_table,
    simple_table,
)
from usdenoise.reporting.html_plots import (
    box_plots,
    curves,
    metric_vs_level,
    quality_vs_time,
    strength_curves,
)
from usdenoise.reporting.tables import TABLE_COLUMNS

REPORT_NAME = "report.html"
KINDS = ("evaluate", "train", "study")
SEGMENT_COLUMNS = ["dice", "iou", "hd95", "area_bias", "hc_abs_error_mm"]
LEGEND = ('<p class="note">↑ higher is better, ↓ lower is better. <span class="best" '
          'style="background:#e3f4e6;color:#135a22;font-weight:700;padding:0 4px">Green</span>: '
          "the best value of the column, marked only where it beats the {base} row "
          "(shown in italics).</p>")
TRAIN_LEGEND = ('<p class="note">↑ higher is better, ↓ lower is better; green: the best value '
                'of the column over the epochs shown.</p>')


def report_kind(folder: Path) -> str:
    """Which run wrote `folder`: "study", "evaluate" (also demo) or "train"."""
    folder = Path(folder)
    if (folder / "study.json").is_file():
        return "study"
    if (folder / "results.json").is_file():
        return "evaluate"
    if (folder / "metrics.csv").is_file() and (folder / "model.json").is_file():
        return "train"
    raise UsdenoiseError(f"{folder}: no results.json (evaluate, demo), study.json (study) or "
                         "metrics.csv + model.json (train run); nothing to report")


def build_report(folder: str | Path, *, command: str | None = None) -> Path:
    """Write FOLDER/report.html from the results in FOLDER; returns its path.

    `command` is the command line that made the run, shown in the header; without it, the
    command an earlier report.html in the folder recorded is kept.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsdenoiseError(f"{folder}: not a folder")
    kind = report_kind(folder)
    target = folder / REPORT_NAME
    if command is None and target.is_file():
        command = recorded_command(target.read_text(encoding="utf-8", errors="replace"))
    page = {"evaluate": evaluate_page, "train": train_page, "study": study_page}[kind](folder)
    page.command = command
    if command and command.split()[1:2] == ["demo"]:
        page.title = page.title.replace("usdenoise evaluate", "usdenoise demo", 1)
    write_text_atomic(target, page.render(version=__version__))
    return target


# ---------------------------------------------------------------------------------------------
# reading


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsdenoiseError(f"{path}: cannot read ({one_line(exc)})") from None


def read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsdenoiseError(f"{path}: cannot read ({one_line(exc)})") from None


def _records(path: Path) -> list[dict[str, Any]]:
    records = read_json(path)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise UsdenoiseError(f"{path}: expected a list of result records")
    if not records:
        raise UsdenoiseError(f"{path}: no result records; nothing to report")
    return records


def _unique(values) -> str | None:
    seen = [compact(v) for v in dict.fromkeys(v for v in values if v is not None and v != "")]
    return ", ".join(seen) if seen else None


def _splits_text(path: Path) -> str | None:
    """"train 16, val 4, test 4 images (seed 0)" from a splits.json."""
    if not path.is_file():
        return None
    doc = read_json(path)
    splits = doc.get("splits") if isinstance(doc, dict) else None
    if not isinstance(splits, dict):
        return None
    counts = ", ".join(f"{name} {len(part.get('indices', []))}" for name, part in splits.items()
                       if isinstance(part, dict))
    return f"{counts} images, by subject (seed {doc.get('seed')})"


def _gallery(folder: Path, pattern: str, root: Path) -> str:
    """The PNGs matching `pattern` in `folder`, embedded, each captioned with its file name."""
    figures = []
    for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
        if path.is_file():
            name = path.relative_to(root).as_posix()
            figures.append(f"<figure>{img(path.read_bytes(), name)}"
                           f"<figcaption>{esc(name)}</figcaption></figure>")
    return f'<div class="gallery">{"".join(figures)}</div>' if figures else ""


# ---------------------------------------------------------------------------------------------
# evaluate / demo


def _level_title(noise: Any, level: Any) -> str:
    return f"{noise} {level}" if noise else "images as they are (no reference)"


def evaluate_page(folder: Path) -> Page:
    """The benchmark: results.json, per_image.csv, splits.json and examples/."""
    records = _records(folder / "results.json")
    per_image = read_csv(folder / "per_image.csv")
    data = _unique(r.get("data") for r in records) or _unique(r.get("dataset") for r in records)
    methods = list(dict.fromkeys(str(r.get("method")) for r in records))
    levels = list(dict.fromkeys((r.get("noise"), r.get("level")) for r in records))
    page = Page(title=f"usdenoise evaluate: {data or folder.name}",
                subtitle="Every method at every noise level on the same noisy test images.")
    page.facts = [
        ("folder", str(folder)),
        ("data", data),
        ("data set", _unique(r.get("dataset") for r in records)),
        ("images evaluated", _unique(r.get("n_images") for r in records)),
        ("splits", _splits_text(folder / "splits.json")),
        ("noise", ", ".join(_level_title(n, v) for n, v in levels)),
        ("methods", ", ".join(methods)),
        ("seed", _unique(r.get("seed") for r in records)),
        ("regions (ENL, CNR, gCNR, SSI)", _unique(r.get("roi") for r in records)),
    ]
    metric_columns = TABLE_COLUMNS + [c for c in SEGMENT_COLUMNS if c not in TABLE_COLUMNS]
    used = [c for c in metric_columns if any(number(r.get(c)) is not None for r in records)]
    tables = [LEGEND.format(base="<code>noisy</code>")]
    for noise, level in levels:
        rows = [r for r in records if (r.get("noise"), r.get("level")) == (noise, level)]
        tables.append(f"<h3>{esc(_level_title(noise, level))}</h3>")
        tables.append(results_table(rows, used, key="method", baseline="noisy"))
    page.add("Summary", "".join(tables))

    params = [(str(r.get("method")), compact(r.get("params") or {})) for r in records]
    page.add("Method parameters", simple_table(["method", "parameters"],
                                               list(dict.fromkeys(params))))
    plots = plot(metric_vs_level(records, ["psnr", "ssim"]),
                 "PSNR and SSIM against the noise level (the noisy input dashed)")
    quality = next((m for m in ("psnr", "ssim", "gcnr", "enl")
                    if any(number(r.get(m)) is not None for r in records)), None)
    if quality:
        plots += plot(quality_vs_time(records, quality),
                      f"{quality.upper()} against time per image (log axis); green: the Pareto "
                      "front (nothing else is both faster and better)")
    page.add("Plots", f'<div class="gallery">{plots}</div>' if plots else "")

    grid, notes = example_grid(folder / "examples", records, per_image)
    body = grid
    if notes:
        body += "".join(f'<p class="note warn">{esc(n)}</p>' for n in notes)
    written = sorted(p.relative_to(folder).as_posix() for p in (folder / "examples").glob("*.png"))
    if written:
        body += ('<p class="note">Whole images, every method side by side (full size, not '
                 "embedded): " + ", ".join(f"<code>{esc(name)}</code>" for name in written)
                 + "</p>")
    page.add("Examples", body)
    strength = plot(strength_curves(read_csv(folder / "strength.csv")),
                    "validation metrics against the strength α")
    strength += _gallery(folder / "tradeoff", "*.png", folder)
    page.add("Strength curves", strength)
    trained = folder / "trained-model"
    if (trained / "metrics.csv").is_file() and (trained / "model.json").is_file():
        page.add("Model trained for this run (trained-model/)",
                 f'<div class="gallery">{_train_plots(trained)}</div>')
    return page


# ---------------------------------------------------------------------------------------------
# train


def _object(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else {} (the run files may lack any section)."""
    return value if isinstance(value, dict) else {}


def _epoch_rows(rows: list[dict[str, Any]], limit: int = 40) -> list[dict[str, Any]]:
    if len(rows) <= limit:
        return rows
    step = -(-len(rows) // limit)
    keep = set(range(0, len(rows), step)) | {len(rows) - 1}
    return [r for k, r in enumerate(rows) if k in keep]


def _train_plots(folder: Path) -> str:
    rows = read_csv(folder / "metrics.csv")
    if not rows:
        return '<p class="note">metrics.csv has no epochs yet.</p>'
    epochs = [number(r.get("epoch")) for r in rows]
    x = [e if e is not None else k + 1 for k, e in enumerate(epochs)]
    columns = list(rows[0])
    losses = {c: [number(r.get(c)) for r in rows] for c in columns if c.endswith("loss")}
    out = plot(curves(x, losses, xlabel="epoch", ylabel="loss", title="loss curves",
                      integer_x=True),
               "training and validation loss per epoch")
    for c in columns:
        if c.startswith("val_") and not c.endswith("loss"):
            out += plot(curves(x, {c: [number(r.get(c)) for r in rows]}, xlabel="epoch",
                               ylabel=c.replace("_", " "), integer_x=True,
                               title=f"{c.replace('_', ' ')} per epoch"),
                        f"{c.replace('_', ' ')} on the validation split")
    return out


def train_page(folder: Path) -> Page:
    """A training run: metrics.csv, model.json (+ model_best.json, splits.json)."""
    model = read_json(folder / "model.json")
    if not isinstance(model, dict):
        raise UsdenoiseError(f"{folder / 'model.json'}: expected a JSON object")
    meta = _object(model.get("meta"))
    config = _object(meta.get("config"))
    data = _object(meta.get("data"))
    best_doc = read_json(folder / "model_best.json") if (folder / "model_best.json").is_file() \
        else {}
    best = best_doc.get("metrics", {}) if isinstance(best_doc, dict) else {}
    rows = read_csv(folder / "metrics.csv")
    images = _object(data.get("images"))
    page = Page(title=f"usdenoise train: {model.get('arch', '?')} on "
                      f"{data.get('spec') or config.get('data') or '?'}",
                subtitle=f"Training run in {folder.name}: loss curves and validation metrics.")
    page.facts = [
        ("folder", str(folder)),
        ("data", data.get("spec") or config.get("data")),
        ("task", meta.get("task") or model.get("kind")),
        ("images", ", ".join(f"{k} {v}" for k, v in images.items()) or None),
        ("splits", _splits_text(folder / "splits.json")),
        ("noise", data.get("noise") or config.get("noise")),
        ("network", f"{model.get('arch')} ({compact(model.get('config') or {})})"),
        ("loss", config.get("loss")),
        ("epochs", f"{len(rows)} run of {config.get('epochs', '?')}"),
        ("best epoch", best.get("epoch")),
        ("seed", config.get("seed")),
        ("version", meta.get("version") or model.get("package_version")),
    ]
    if rows:
        columns = [c for c in rows[0] if c not in ("epoch",)]
        shown = [dict(r, epoch=r.get("epoch")) for r in _epoch_rows(rows)]
        table = results_table(shown, columns, key="epoch", baseline="\0none")
        page.add("Summary", TRAIN_LEGEND
                 + (f'<p class="note">Best checkpoint: epoch {esc(best.get("epoch"))}.</p>'
                    if best.get("epoch") is not None else "") + table)
    page.add("Plots", f'<div class="gallery">{_train_plots(folder)}</div>')
    page.add("Settings", simple_table(["key", "value"],
                                      [(k, compact(v)) for k, v in config.items()]))
    return page


# ---------------------------------------------------------------------------------------------
# study


def _ci(key: str, digits: int):
    """Cell: the mean, and its 95% interval on a second line."""
    def cell(record: dict[str, Any]) -> tuple[str, str]:
        value = number(record.get(key))
        if value is None:
            return "–", ""
        low, high = number(record.get(f"{key}_low")), number(record.get(f"{key}_high"))
        detail = f"[{low:.{digits}f}, {high:.{digits}f}]" if None not in (low, high) else ""
        return f"{value:.{digits}f}", detail
    return cell


def _diff(key: str, digits: int):
    """Cell: the paired difference to `none`, and its p-value on a second line."""
    def cell(record: dict[str, Any]) -> tuple[str, str]:
        value = number(record.get(f"{key}_diff"))
        if value is None:
            return "–", ""
        p = number(record.get(f"{key}_p"))
        return f"{value:+.{digits}f}", (f"p={p:.2g}" if p is not None else "")
    return cell


def study_page(folder: Path) -> Page:
    """The denoise -> segment study: study.json, per_image.csv, figures/example_*.png."""
    doc = read_json(folder / "study.json")
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise UsdenoiseError(f"{folder / 'study.json'}: expected a study document with records")
    settings = _object(doc.get("settings"))
    records = [r for r in doc["records"] if isinstance(r, dict)]
    splits = _object(doc.get("splits"))
    page = Page(title=f"usdenoise study: {settings.get('data', folder.name)}",
                subtitle="Does denoising help segmentation? Means over test subjects with 95% "
                         "bootstrap intervals; Δ = arm − none, paired by subject.")
    page.facts = [
        ("folder", str(folder)),
        ("data", settings.get("data")),
        ("image size", settings.get("size")),
        ("splits", ", ".join(f"{k} {v}" for k, v in splits.items()) + " images"
         if splits else None),
        ("inputs (noise)", compact(settings.get("inputs"))),
        ("protocols", compact(settings.get("protocols"))),
        ("arms", ", ".join(str(a.get("name")) for a in doc.get("arms", [])
                           if isinstance(a, dict))),
        ("segmenter", settings.get("segmenter_arch")),
        ("strength tuning", "on" if settings.get("tune_strength") else "off"),
        ("mode", "quick" if settings.get("quick") else "full"),
        ("seed", settings.get("seed")),
        ("version", doc.get("version")),
    ]
    notes = "".join(f'<p class="note warn">{esc(n)}</p>' for n in doc.get("notes", []))
    arms = simple_table(["arm", "what it is"], [(a.get("name"), a.get("summary"))
                                                for a in doc.get("arms", [])
                                                if isinstance(a, dict)])
    page.add("Arms", arms + notes)

    columns = ["strength", "dice", "dice_diff", "hd95", "hc_abs_error_mm",
               "hc_abs_error_mm_diff", "area_bias", "psnr"]
    labels = {"arm": "arm", "strength": "α", "dice": "Dice", "dice_diff": "Δ Dice",
              "hd95": "HD95", "hc_abs_error_mm": "HC error (mm)",
              "hc_abs_error_mm_diff": "Δ HC error", "area_bias": "area bias", "psnr": "PSNR (dB)"}
    extra = {"dice": _ci("dice", 3), "dice_diff": _diff("dice", 3), "hd95": _ci("hd95", 2),
             "hc_abs_error_mm": _ci("hc_abs_error_mm", 2),
             "hc_abs_error_mm_diff": _diff("hc_abs_error_mm", 2),
             "area_bias": _ci("area_bias", 3), "psnr": _ci("psnr", 2),
             "strength": lambda r: compact(number(r.get("strength")))}
    protocols: dict[Any, str] = {
        "A": "Protocol A: segmenter trained on original images, tested on processed ones",
        "B": "Protocol B: segmenter trained and tested on processed images"}
    tables = [LEGEND.format(base="<code>none</code> arm")]
    for protocol in dict.fromkeys(r.get("protocol") for r in records):
        part = [r for r in records if r.get("protocol") == protocol]
        tables.append(f"<h3>{esc(protocols.get(protocol, f'protocol {protocol}'))}</h3>")
        for noise in dict.fromkeys(r.get("input") for r in part):
            rows = [r for r in part if r.get("input") == noise]
            used = [c for c in columns if c == "strength"
                    or any(number(r.get(c)) is not None for r in rows)]
            tables.append(f"<p><b>input: {esc(noise if noise != 'none' else 'original images')}"
                          "</b></p>")
            tables.append(results_table(rows, used, key="arm", baseline="none",
                                        labels=labels, extra=extra))
    page.add("Summary", "".join(tables))

    targets = _object(doc.get("targets"))
    if targets:
        lines = []
        for name, t in targets.items():
            if not isinstance(t, dict):
                continue
            shown = {k: v for k, v in t.items() if k not in ("target", "met", "arms")}
            lines.append((name, "met" if t.get("met") else "NOT met", t.get("target"),
                          ", ".join(f"{k} {fmt(v) if number(v) is not None else compact(v)}"
                                    for k, v in shown.items())))
        page.add("Targets", simple_table(["target", "result", "goal", "measured"], lines))

    per_image = read_csv(folder / "per_image.csv")
    plots = ""
    for key, label in (("dice", "Dice"), ("hc_abs_error_mm", "HC error (mm)")):
        groups: dict[str, dict[str, list[float]]] = {}
        for r in per_image:
            value = number(r.get(key))
            if value is None:
                continue
            group = f"protocol {r.get('protocol')}, input {r.get('input')}"
            groups.setdefault(group, {}).setdefault(str(r.get("arm")), []).append(value)
        better = "higher" if key == "dice" else "lower"
        plots += plot(box_plots(groups, ylabel=label, title=f"{label} per test image "
                                f"({better} is better)"),
                      f"{label} per test image, one box per arm (per_image.csv)")
    plots += plot(strength_curves(doc.get("curves") or []),
                  "validation metrics against the denoising strength α (protocol A segmenter)")
    page.add("Plots", f'<div class="gallery">{plots}</div>' if plots else "")
    chosen = doc.get("strengths_chosen") or []
    if chosen:
        page.add("Strength chosen on the validation split", simple_table(
            ["input", "arm", "α"], [(c.get("input"), c.get("arm"), fmt(c.get("alpha")))
                                    for c in chosen if isinstance(c, dict)]))
    overlays = _gallery(folder / "figures", "example_*.png", folder)
    if overlays:
        overlays = ('<p class="note">Rows: inputs; columns: arms; tint: protocol A prediction; '
                    "green: the true border.</p>" + overlays)
    page.add("Segmentation overlays", overlays)
    timing = doc.get("denoise_seconds_per_image")
    if isinstance(timing, dict) and timing:
        page.add("Denoising time", meta_list((k, fmt(v, "seconds_per_image"))
                                             for k, v in timing.items()))
    return page
