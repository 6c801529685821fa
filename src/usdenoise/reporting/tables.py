"""Results as files a program and a person can read: JSON, CSV, a Markdown table, figures.

Every user-controlled string (method, data set and noise names, ids) is escaped for the
format it lands in: `escape_markdown` for Markdown cells and headings (`|`, backticks, `<`,
`>`, `&`, `\\`, `[`, `]`, `#` and newlines), `csv_cell` for CSV (a text cell starting with
`=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'` so a spreadsheet shows
it as text and never runs it as a formula; numbers such as -0.5 stay numbers).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from usdenoise.core.files import atomic_write, write_text_atomic

# columns shown in tables, with the direction that counts as better
HIGHER_IS_BETTER = {"psnr", "ssim", "ms_ssim", "enl", "cnr", "gcnr", "epi", "ssi_inverse"}
LOWER_IS_BETTER = {"seconds_per_image", "ssi"}
TABLE_COLUMNS = ["psnr", "ssim", "ms_ssim", "enl", "cnr", "gcnr", "epi", "ssi", "seconds_per_image"]


# `#` too: no name reads as a heading marker (evaluate splits results.md at its first `###`)
_MARKDOWN_SPECIAL = re.compile(r"([\\`\[\]|#])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_markdown(text: Any) -> str:
    """`text` as literal Markdown inline text: one line, no table break, no HTML, no code."""
    value = " ".join(str(text).splitlines()) if text is not None else ""
    value = _MARKDOWN_SPECIAL.sub(r"\\\1", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: formula-like text gets a leading `'`."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) \
            and not _is_number_text(value):
        return "'" + value
    return value


def records_to_csv(records: Sequence[dict[str, Any]]) -> str:
    keys: list[str] = []
    for record in records:
        keys += [k for k in record if k not in keys and not isinstance(record[k], dict | list)]
    buffer = io.StringIO()
    _write_rows(buffer, keys, records)
    return buffer.getvalue()


def write_csv_rows(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    """The CSV `records_to_csv` makes of `rows` with these `columns`, written atomically row
    by row (for many rows: nothing is built in memory)."""
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        _write_rows(handle, columns, rows)


def _write_rows(handle: IO[str], columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow([csv_cell(k) for k in columns])
    for row in rows:
        writer.writerow([csv_cell(_plain(row.get(k))) for k in columns])


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("nan" if value != value else "-inf")
    return "" if value is None else value


def json_safe(value: Any) -> Any:
    """Strict JSON: NaN -> null, +-inf -> "inf"/"-inf"; numpy/torch scalars -> Python numbers."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def records_to_json(records: Sequence[dict[str, Any]]) -> str:
    return json.dumps(json_safe(list(records)), indent=2) + "\n"


def _number(value: Any) -> Any:
    """Undo the JSON spelling of non-finite numbers, so tables rebuild from results.json."""
    if isinstance(value, str) and value.strip().lower() in {"inf", "-inf", "nan"}:
        return float(value)
    return value


def _fmt(value: Any, column: str) -> str:
    value = _number(value)
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, str):
        return escape_markdown(value)
    if column == "seconds_per_image":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if column in {"psnr", "enl", "cnr"}:
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown_table(
    records: Sequence[dict[str, Any]],
    *,
    columns: Sequence[str] = TABLE_COLUMNS,
    baseline: str = "noisy",
) -> str:
    """One table per (noise, level); the best value of each column among the denoisers in bold.

    The `noisy` baseline row is shown but never bolded: it is the reference for the gain.
    """
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record.get("noise"), record.get("level")), []).append(record)
    used = [c for c in columns if any(r.get(c) is not None for r in records)]
    parts = []
    for (noise, level), rows in groups.items():
        title = (escape_markdown(f"{noise} {level}") if noise
                 else "images as they are (no reference)")
        about = [escape_markdown(rows[0]["dataset"])] if rows[0].get("dataset") else []
        if rows[0].get("n_images") is not None:
            about.append(f"{escape_markdown(rows[0]['n_images'])} images")
        parts.append(f"### {title}" + (f" — {', '.join(about)}" if about else "") + "\n")
        best: dict[str, float] = {}
        for c in used:
            # +inf counts (PSNR of a perfect output is the best there is); NaN never does
            values = [_number(r[c]) for r in rows
                      if r.get("method") != baseline and _comparable(_number(r.get(c)))]
            if values:
                best[c] = min(values) if c in LOWER_IS_BETTER else max(values)
        header = "| method | " + " | ".join(escape_markdown(c.replace("_", " "))
                                            for c in used) + " |"
        parts += [header, "|" + "---|" * (len(used) + 1)]
        for r in rows:
            cells = []
            for c in used:
                text = _fmt(r.get(c), c)
                if r.get("method") != baseline and c in best and _number(r.get(c)) == best[c]:
                    text = f"**{text}**"
                cells.append(text)
            parts.append(f"| {escape_markdown(r.get('method'))} | " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def _comparable(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def write_results(records: Sequence[dict[str, Any]], out_dir: Path, *, title: str) -> list[Path]:
    """Write results.json, results.csv and results.md into out_dir (each atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "results.json", out_dir / "results.csv", out_dir / "results.md"]
    texts = [
        records_to_json(records),
        records_to_csv(records),
        f"# {escape_markdown(title)}\n\nBest value per column among the denoisers in **bold**; "
        "the `noisy` row is the input before denoising.\n\n" + markdown_table(records),
    ]
    for path, text in zip(paths, texts, strict=True):
        write_text_atomic(path, text)
    return paths
