"""The pieces of a self-contained HTML report: escaping, tables, embedded images, the page.

Everything a page shows is inline: CSS in a <style> element, images as `data:image/png;base64`
URIs, no script and nothing fetched, so the file can be mailed, archived or opened offline.
Every string that came from a user (file names, data paths, parameters, method names) goes
through `esc` (`html.escape`), so a name such as `<script>` is shown as text.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from usdenoise.reporting.tables import HIGHER_IS_BETTER, LOWER_IS_BETTER

# directions of metrics that are not in the result tables' sets
MORE_HIGHER = {"dice", "iou", "val_psnr", "val_ssim", "val_dice", "val_iou", "fraction_recovered"}
MORE_LOWER = {"hd95", "hc_abs_error_mm", "train_loss", "val_loss", "loss", "hd95_mm", "hd95_px"}

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
margin:0;background:#f4f5f7;color:#1c1e21;line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:20px 28px 48px}
h1{font-size:1.6em;margin:.2em 0 .1em}
h2{font-size:1.25em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:2px solid #d7dbe0}
h3{font-size:1.05em;margin:1.2em 0 .4em}
.sub{color:#5f6670;margin:0 0 1em}
section{background:#fff;border:1px solid #e0e3e8;border-radius:8px;padding:4px 20px 16px;
margin:16px 0}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 18px;margin:10px 0}
dl.meta dt{font-weight:600;color:#3b4048}
dl.meta dd{margin:0;word-break:break-word}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;background:#f0f1f4;
padding:1px 4px;border-radius:3px}
table.results{border-collapse:collapse;margin:8px 0 14px;font-size:.92em;
font-variant-numeric:tabular-nums}
table.results th,table.results td{padding:4px 10px;border-bottom:1px solid #e3e6ea;
text-align:right;white-space:nowrap}
table.results th{background:#eef1f5;font-weight:600}
table.results th:first-child,table.results td:first-child{text-align:left}
table.plain td,table.plain th{text-align:left;white-space:normal}
.scroll{overflow-x:auto;max-width:100%}
.ci{display:block;font-size:.78em;color:#6b717a;font-weight:400}
table.results tr.baseline td{color:#6b717a;font-style:italic}
table.results td.best{font-weight:700;background:#e3f4e6;color:#135a22}
.dir{color:#6b717a;font-weight:400}
.note{color:#5f6670;font-size:.9em}
.warn{color:#8a4b00}
figure{margin:8px 0}
figure.plot img{max-width:100%;height:auto;border:1px solid #eceef1;border-radius:4px}
figcaption{font-size:.85em;color:#4a4f57}
.grid{display:grid;gap:8px 8px;align-items:start;margin:6px 0 14px}
.grid figure{margin:0;text-align:center}
.grid img{width:100%;height:auto;image-rendering:pixelated;border:1px solid #d5d9df;
background:#000}
.grid .label{font-weight:600;font-size:.82em;word-break:break-all}
.grid .value{font-size:.8em;color:#3b4048}
.rowhead{font-size:.8em;color:#5f6670;align-self:center;text-align:right}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
.gallery figure{max-width:100%}
.gallery img{max-width:100%;height:auto;border:1px solid #eceef1}
footer{color:#7b818a;font-size:.85em;margin-top:28px}
"""


def esc(value: Any) -> str:
    """HTML-escaped text of any value (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def png_uri(data: bytes) -> str:
    """A data: URI for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def img(data: bytes, alt: str, *, css_class: str | None = None, width: int | None = None) -> str:
    """An <img> with the PNG embedded; `alt` is user text and is escaped."""
    extra = f' class="{esc(css_class)}"' if css_class else ""
    extra += f' width="{int(width)}"' if width else ""
    return f'<img src="{png_uri(data)}" alt="{esc(alt)}"{extra}>'


def plot(data: bytes | None, caption: str) -> str:
    """A figure with one embedded plot and its caption, or "" without a plot."""
    if data is None:
        return ""
    return (f'<figure class="plot">{img(data, caption)}'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def direction(column: str) -> str | None:
    """"higher" / "lower" (is better) for a metric column, None when neither."""
    if column in HIGHER_IS_BETTER or column in MORE_HIGHER:
        return "higher"
    if column in LOWER_IS_BETTER or column in MORE_LOWER:
        return "lower"
    return None


def number(value: Any) -> float | None:
    """A finite or infinite float from a JSON/CSV value; None for missing, NaN and text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, int | float):
        value = float(value)
        return None if value != value else value
    return None


def fmt(value: Any, column: str = "") -> str:
    """A table cell: units for time, 2 decimals for dB-like columns, 3 (or 4) for the rest."""
    v = number(value)
    if v is None:
        return "–" if value is None or not isinstance(value, str) or not value else value
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if column in {"seconds_per_image", "seconds"}:
        return f"{v * 1000:.1f} ms" if abs(v) < 1 else f"{v:.2f} s"
    if column in {"psnr", "val_psnr", "enl", "cnr", "hd95", "hc_abs_error_mm", "hd95_mm"}:
        return f"{v:.2f}"
    if column in {"epoch", "n_images", "n_subjects"} or (v.is_integer() and abs(v) >= 100):
        return f"{v:.0f}"
    if column in {"lr"}:
        return f"{v:.3g}"
    return f"{v:.3f}" if abs(v) >= 0.01 or v == 0 else f"{v:.3g}"


def header_cell(column: str, label: str | None = None) -> str:
    """A column header with ↑ (higher is better) or ↓ (lower is better)."""
    text = esc(label or column.replace("_", " "))
    arrow = {"higher": "↑", "lower": "↓"}.get(direction(column) or "")
    if arrow:
        meaning = "higher" if arrow == "↑" else "lower"
        text += f' <span class="dir" title="{meaning} is better">{arrow}</span>'
    return f"<th>{text}</th>"


def best_values(rows: Sequence[dict[str, Any]], columns: Iterable[str], *, key: str,
                baseline: str) -> dict[str, float]:
    """Per column, the best value among the non-baseline rows, kept only where it beats the
    baseline row's value (a column the baseline has no value for is not marked); every
    column's best when there is no baseline row."""
    base = next((r for r in rows if r.get(key) == baseline), None)
    best: dict[str, float] = {}
    for column in columns:
        way = direction(column)
        if way is None:
            continue
        values = [v for r in rows if r.get(key) != baseline
                  and (v := number(r.get(column))) is not None]
        if not values:
            continue
        top = max(values) if way == "higher" else min(values)
        if base is None:  # nothing to beat (e.g. the epochs of a training run)
            best[column] = top
            continue
        reference = number(base.get(column))
        if reference is not None and (top > reference if way == "higher" else top < reference):
            best[column] = top
    return best


def results_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, key: str,
                  baseline: str, labels: dict[str, str] | None = None,
                  extra: dict[str, Any] | None = None) -> str:
    """A table with one row per record: `key` first, then `columns`; the best value per
    column is highlighted where it beats the baseline row, which is shown in italics.
    `extra` maps a column to a function (record -> cell text, or (text, detail) where the
    detail, e.g. a confidence interval, goes on a second, smaller line) for that column."""
    labels, extra = labels or {}, extra or {}
    best = best_values(rows, columns, key=key, baseline=baseline)
    out = ['<div class="scroll"><table class="results"><thead><tr>',
           header_cell(key, labels.get(key))]
    out += [header_cell(c, labels.get(c)) for c in columns]
    out.append("</tr></thead><tbody>")
    for r in rows:
        is_base = r.get(key) == baseline
        out.append('<tr class="baseline">' if is_base else "<tr>")
        out.append(f"<td>{esc(r.get(key))}</td>")
        for c in columns:
            text = extra[c](r) if c in extra else fmt(r.get(c), c)
            if isinstance(text, tuple):
                text, detail = text
                cell = esc(text) + (f'<span class="ci">{esc(detail)}</span>' if detail else "")
            else:
                cell = esc(text)
            v = number(r.get(c))
            marked = not is_base and c in best and v is not None and v == best[c]
            out.append(f'<td class="best">{cell}</td>' if marked else f"<td>{cell}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def simple_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain table of escaped text (left-aligned, wrapping)."""
    out = ['<div class="scroll"><table class="results plain"><thead><tr>']
    out += [f"<th>{esc(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def meta_list(items: Iterable[tuple[str, Any]]) -> str:
    """A definition list of (label, value) pairs; values are escaped, missing ones dropped."""
    parts = [f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items
             if v is not None and v != ""]
    return f'<dl class="meta">{"".join(parts)}</dl>' if parts else ""


def compact(value: Any) -> str:
    """Settings and parameters as short text: `k=v, k=v` for dicts, `a, b` for lists."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={compact(v)}" for k, v in value.items()) or "–"
    if isinstance(value, list | tuple):
        return ", ".join(compact(v) for v in value) or "–"
    if isinstance(value, float):
        return f"{value:g}"
    return "–" if value is None else str(value)


@dataclass
class Page:
    """A report page: a title, header facts, then sections of trusted HTML built here."""

    title: str
    subtitle: str = ""
    facts: list[tuple[str, Any]] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    command: str | None = None

    def add(self, heading: str, body: str) -> None:
        if body:
            self.sections.append((heading, body))

    def render(self, *, version: str) -> str:
        facts = list(self.facts)
        if self.command:
            facts.append(("command", self.command))
        head_meta = ""
        if self.command:
            head_meta = f'<meta name="usdenoise-command" content="{esc(self.command)}">'
        body = [f"<h1>{esc(self.title)}</h1>"]
        if self.subtitle:
            body.append(f'<p class="sub">{esc(self.subtitle)}</p>')
        body.append(f"<section><h2>Run</h2>{meta_list(facts)}</section>")
        for heading, content in self.sections:
            body.append(f"<section><h2>{esc(heading)}</h2>{content}</section>")
        body.append(f"<footer>Written by usdenoise {esc(version)}; self-contained: every "
                    "image is embedded, nothing is fetched.</footer>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"{head_meta}<title>{esc(self.title)}</title><style>{CSS}</style></head>"
                f"<body><main>{''.join(body)}</main></body></html>\n")


COMMAND_META = re.compile(r'<meta name="usdenoise-command" content="([^"]*)">')


def recorded_command(page_text: str) -> str | None:
    """The command an earlier report recorded (its <meta>), so a rebuild keeps it."""
    match = COMMAND_META.search(page_text)
    return html.unescape(match.group(1)) if match else None
