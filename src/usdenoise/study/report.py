"""What `usdenoise study` writes: subject-level summaries, paired tests, targets, figures.

Every figure is a mean over test *subjects* with a 95% percentile bootstrap interval (images
of one subject are averaged first, `usdenoise.metrics.stats`), and every arm is compared with the
`none` arm of the same protocol and input, subject by subject (Wilcoxon signed-rank).

Files (written to a staging folder, then published together):
study.json (settings, arms, notes, summaries, strength curves, targets), study.csv (one row
per protocol × input × arm), study.md (the tables a person reads), per_image.csv,
strength.csv, figures/dice.png, figures/strength_<input>.png, figures/example_<id>.png.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from usdenoise import __version__
from usdenoise.core.files import staged_dir, write_text_atomic
from usdenoise.metrics.stats import bootstrap_ci, paired_comparison
from usdenoise.reporting.figures import pyplot, safe_name, save_figure
from usdenoise.reporting.tables import escape_markdown as md
from usdenoise.reporting.tables import json_safe, records_to_csv
from usdenoise.segmentation.evaluate import overlay

METRICS = ("dice", "hd95", "hc_abs_error_mm", "area_bias", "psnr")  # summarised per record
RECOVERY_INPUT = "rayleigh:0.5"
TUNED_SUFFIX = "@tuned"


def _values(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows])


def _subjects(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [str(r.get("subject") if r.get("subject") is not None else r["id"]) for r in rows]


def summarise(rows: list[dict[str, Any]], *, seed: int = 0, resamples: int = 2000
              ) -> list[dict[str, Any]]:
    """One record per (protocol, input, arm): mean [CI] of each metric and the paired
    difference to `none` with its interval and p-value."""

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["protocol"], r["input"], r["arm"]), []).append(r)
    records = []
    for (protocol, noise, arm), group in groups.items():
        base = {r["id"]: r for r in groups.get((protocol, noise, "none"), [])}
        record: dict[str, Any] = {
            "protocol": protocol, "input": noise, "arm": arm,
            "strength": group[0].get("strength", 1.0), "n_images": len(group),
            "n_subjects": len(set(_subjects(group))),
            "hd95_unit": group[0].get("hd95_unit"),
            "n_missing_hc": sum(r.get("hc_status") == "no head predicted" for r in group)}
        for key in METRICS:
            values = _values(group, key)
            if np.isnan(values).all():
                record.update({key: None, f"{key}_low": None, f"{key}_high": None})
                continue
            s = bootstrap_ci(values, _subjects(group), seed=seed, resamples=resamples)
            record.update({key: s.mean, f"{key}_low": _finite(s.low),
                           f"{key}_high": _finite(s.high)})
            paired = [r for r in group if r["id"] in base]
            if arm == "none" or not paired:
                continue
            a, b = _values(paired, key), _values([base[r["id"]] for r in paired], key)
            ok = ~(np.isnan(a) | np.isnan(b))
            if not ok.any():
                continue
            subjects = [s for s, keep in zip(_subjects(paired), ok, strict=True) if keep]
            p = paired_comparison(a[ok], b[ok], subjects, seed=seed, resamples=resamples)
            record.update({f"{key}_diff": p.mean_difference, f"{key}_diff_low": _finite(p.low),
                           f"{key}_diff_high": _finite(p.high), f"{key}_p": _finite(p.p_value)})
        records.append(record)
    return records


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _find(records, protocol: str, noise: str, arm: str) -> dict[str, Any] | None:
    for r in records:
        if (r["protocol"], r["input"], r["arm"]) == (protocol, noise, arm):
            return r
    return None


def targets(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets as far as this study measured them (protocol A)."""
    out: dict[str, Any] = {}
    reference = _find(records, "A", "none", "none")
    if reference:
        out["original_images"] = {
            "dice": reference["dice"], "hc_abs_error_mm": reference["hc_abs_error_mm"],
            "target": "Dice >= 0.97 and HC error <= 2.0 mm",
            "met": _ge(reference["dice"], 0.97) and _le(reference["hc_abs_error_mm"], 2.0)}
    noisy = _find(records, "A", RECOVERY_INPUT, "none")
    if reference and noisy and reference["dice"] is not None and noisy["dice"] is not None:
        lost = reference["dice"] - noisy["dice"]
        arms = [r for r in records if r["protocol"] == "A" and r["input"] == RECOVERY_INPUT
                and r["arm"] != "none" and r["dice"] is not None]
        if arms:
            best = max(arms, key=lambda r: r["dice"])
            fraction = (best["dice"] - noisy["dice"]) / lost if lost > 0 else None
            out["recovery_at_rayleigh_0.5"] = {
                "dice_original": reference["dice"], "dice_noisy": noisy["dice"],
                "best_arm": best["arm"], "strength": best["strength"], "dice_best": best["dice"],
                "fraction_recovered": fraction, "target": ">= 0.80 of the Dice lost",
                "met": _ge(fraction, 0.8)}
    if reference:
        tuned = [r for r in records if r["protocol"] == "A" and r["input"] == "none"
                 and r["arm"].endswith(TUNED_SUFFIX) and r["dice"] is not None]
        if tuned:
            rows = [{"arm": r["arm"], "strength": r["strength"],
                     "dice_loss": reference["dice"] - r["dice"]} for r in tuned]
            best = min(rows, key=lambda r: r["dice_loss"])
            out["tuned_on_original_images"] = {
                "arms": rows, "best": best, "target": "Dice loss <= 0.005 versus none",
                "met": best["dice_loss"] <= 0.005}
    return out


def _ge(value: float | None, bound: float) -> bool:
    return value is not None and value >= bound


def _le(value: float | None, bound: float) -> bool:
    return value is not None and value <= bound


# ---------------------------------------------------------------------------------------------
# markdown


def _cell(record: dict[str, Any], key: str, digits: int) -> str:
    v = record.get(key)
    if v is None:
        return "–"
    low, high = record.get(f"{key}_low"), record.get(f"{key}_high")
    text = f"{v:.{digits}f}"
    if low is not None and high is not None:
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def _diff_cell(record: dict[str, Any], key: str, digits: int) -> str:
    d = record.get(f"{key}_diff")
    if d is None:
        return "–"
    p = record.get(f"{key}_p")
    low, high = record.get(f"{key}_diff_low"), record.get(f"{key}_diff_high")
    text = f"{d:+.{digits}f}"
    if low is not None and high is not None:
        text += f" [{low:+.{digits}f}, {high:+.{digits}f}]"
    if p is not None:
        text += f" p={p:.2g}"
    return text


def to_markdown(document: dict[str, Any]) -> str:
    """study.md; every string that comes from the user (data path, inputs, arm names, notes
    naming files) goes through `escape_markdown`."""
    settings = document["settings"]
    records = document["records"]
    lines = ["# usdenoise study", "",
             f"Data {md(settings['data'])} at {settings['size']} px, seed {settings['seed']}, "
             f"{'quick' if settings['quick'] else 'full'} mode; split "
             + ", ".join(f"{md(k)} {md(v)}" for k, v in document["splits"].items()) + " images. "
             f"Segmenter: {md(settings['segmenter_arch'])}. Means over test subjects with 95% "
             "bootstrap intervals; Δ = arm − none, paired by subject (Wilcoxon p).", ""]
    lines += [f"- **{md(a['name'])}**: {md(a['summary'])}" for a in document["arms"]]
    lines.append("")
    lines += [f"Note: {md(n)}" for n in document["notes"]]
    protocols = {"A": "Protocol A: segmenter trained on original images, tested on processed ones",
                 "B": "Protocol B: segmenter trained and tested on processed images"}
    for protocol, title in protocols.items():
        part = [r for r in records if r["protocol"] == protocol]
        if not part:
            continue
        lines += ["", f"## {title}"]
        for noise in dict.fromkeys(r["input"] for r in part):
            lines += ["", f"### input: {md(noise) if noise != 'none' else 'original images'}", "",
                      "| arm | α | Dice | Δ Dice | HD95 | HC error (mm) | Δ HC error | "
                      "area bias | PSNR (dB) |", "|---|---|---|---|---|---|---|---|---|"]
            for r in (r for r in part if r["input"] == noise):
                lines.append(
                    f"| {md(r['arm'])} | {r['strength']:g} | {_cell(r, 'dice', 3)} | "
                    f"{_diff_cell(r, 'dice', 3)} | {_cell(r, 'hd95', 2)} | "
                    f"{_cell(r, 'hc_abs_error_mm', 2)} | {_diff_cell(r, 'hc_abs_error_mm', 2)} | "
                    f"{_cell(r, 'area_bias', 3)} | {_cell(r, 'psnr', 2)} |")
    if document["curves"]:
        lines += ["", "## Strength chosen on the validation split (protocol A segmenter)", "",
                  "| input | arm | α | val Dice at α | val Dice at α=1 | val PSNR at α |",
                  "|---|---|---|---|---|---|"]
        for choice in document["strengths_chosen"]:
            points = [c for c in document["curves"]
                      if c["input"] == choice["input"] and c["arm"] == choice["arm"]]
            at = next(c for c in points if c["alpha"] == choice["alpha"])
            full = next((c for c in points if c["alpha"] == 1.0), None)
            lines.append(f"| {md(choice['input'])} | {md(choice['arm'])} | {choice['alpha']:g} | "
                         f"{_num(at['val_dice'])} | {_num(full and full['val_dice'])} | "
                         f"{_num(at['val_psnr'], 2)} |")
    lines += ["", "## Targets", ""]
    for name, t in document["targets"].items():
        shown = {k: v for k, v in t.items() if k not in ("target", "met", "arms")}
        lines.append(f"- {name}: {'met' if t['met'] else 'NOT met'} (target {t['target']}): "
                     + ", ".join(f"{k} {_num(v) if isinstance(v, float) else md(v)}"
                                 for k, v in shown.items()))
    lines += ["", "Figures: figures/dice.png, figures/strength_*.png, figures/example_*.png "
              "(rows: inputs; columns: arms; tint: protocol A prediction; green: true border).",
              ""]
    return "\n".join(lines)


def _num(value: Any, digits: int = 4) -> str:
    return "–" if value is None else (f"{value:.{digits}f}" if isinstance(value, float)
                                      else str(value))


# ---------------------------------------------------------------------------------------------
# figures


def _dice_figure(path: Path, records: list[dict[str, Any]]) -> None:

    plt = pyplot()
    protocols = sorted({r["protocol"] for r in records})
    fig, axes = plt.subplots(1, len(protocols), figsize=(6.5 * len(protocols), 4), squeeze=False)
    for ax, protocol in zip(axes[0], protocols, strict=True):
        part = [r for r in records if r["protocol"] == protocol and r["dice"] is not None]
        arms = list(dict.fromkeys(r["arm"] for r in part))
        inputs = list(dict.fromkeys(r["input"] for r in part))
        for k, noise in enumerate(inputs):
            xs: list[float] = []
            ys: list[float] = []
            err: list[list[float]] = [[], []]
            for j, arm in enumerate(arms):
                r = _find(part, protocol, noise, arm)
                if r is None:
                    continue
                low = r["dice"] if r["dice_low"] is None else r["dice_low"]
                high = r["dice"] if r["dice_high"] is None else r["dice_high"]
                xs.append(j + (k - (len(inputs) - 1) / 2) * 0.2)
                ys.append(r["dice"])
                err[0].append(r["dice"] - low)
                err[1].append(high - r["dice"])
            ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3, label=noise)
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels(arms, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("Dice (test subjects, 95% CI)")
        ax.set_title(f"protocol {protocol}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="input", title_fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _strength_figures(folder: Path, curves: list[dict[str, Any]]) -> None:

    plt = pyplot()
    for noise in dict.fromkeys(c["input"] for c in curves):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        part = [c for c in curves if c["input"] == noise]
        for arm in dict.fromkeys(c["arm"] for c in part):
            points = [c for c in part if c["arm"] == arm]
            alphas = [c["alpha"] for c in points]
            left.plot(alphas, [c["val_dice"] for c in points], marker="o", label=arm)
            right.plot(alphas, [c["val_psnr"] for c in points], marker="o", label=arm)
        left.set(xlabel="strength α", ylabel="validation Dice")
        right.set(xlabel="strength α", ylabel="validation PSNR (dB)")
        for ax in (left, right):
            ax.grid(alpha=0.3)
        left.legend(fontsize=7)
        fig.suptitle(f"input {noise}: Dice and PSNR against the denoising strength", fontsize=10)
        fig.tight_layout()
        save_figure(fig, folder / f"strength_{safe_name(noise)}.png")


def _example_figure(path: Path, image_id: str, mask, tiles) -> None:

    plt = pyplot()
    inputs = list(dict.fromkeys(t[0] for t in tiles))
    arms = list(dict.fromkeys(t[1] for t in tiles))
    fig, axes = plt.subplots(len(inputs), len(arms), squeeze=False,
                             figsize=(1.9 * len(arms), 2.0 * len(inputs) + 0.4))
    for noise, arm, image, pred in tiles:
        ax = axes[inputs.index(noise)][arms.index(arm)]
        ax.imshow(overlay(image, pred, mask).permute(1, 2, 0).numpy())
        ax.set_xticks([])
        ax.set_yticks([])
        if noise == inputs[0]:
            ax.set_title(arm, fontsize=7)
        if arm == arms[0]:
            ax.set_ylabel(noise, fontsize=8)
    fig.suptitle(f"{image_id}: protocol A prediction (tint) and true border (green)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


# ---------------------------------------------------------------------------------------------
# writing


def write_study(out_dir: Path, *, rows: list[dict[str, Any]], curves: list[dict[str, Any]],
                context: dict[str, Any], examples, seed: int, resamples: int) -> dict[str, Any]:
    """Summarise and write everything; returns the study.json document."""

    records = summarise(rows, seed=seed, resamples=resamples)
    document = {"version": __version__, **context, "records": records, "curves": curves,
                "targets": targets(records)}
    with staged_dir(out_dir, command="study") as staging:
        (staging / "figures").mkdir()
        write_text_atomic(staging / "study.json",
                          json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")
        write_text_atomic(staging / "study.csv", records_to_csv(records))
        write_text_atomic(staging / "study.md", to_markdown(document))
        write_text_atomic(staging / "per_image.csv", records_to_csv(rows))
        if curves:
            write_text_atomic(staging / "strength.csv", records_to_csv(curves))
            _strength_figures(staging / "figures", curves)
        if records:
            _dice_figure(staging / "figures" / "dice.png", records)
        for image_id, mask, tiles in examples:
            _example_figure(staging / "figures" / f"example_{safe_name(image_id)}.png", image_id,
                            mask, tiles)
    return document
