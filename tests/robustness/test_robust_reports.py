"""Catalogue rows for the tables `evaluate` and `study` write (docs/robustness.md): names that
come from the user (a data folder, file ids, inputs, arm names, notes naming files) are
escaped in every Markdown and CSV file, so no name adds a table column, a heading, a link or
HTML, and no CSV cell runs as a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
import robust_files as rf
from cli_helpers import run_cli

from usdenoise.reporting.tables import escape_markdown
from usdenoise.study.report import write_study

HOSTILE = "x|y`<script>alert(1)</script>###[a](b)"  # a legal folder name on POSIX
IDS = ["=HYPERLINK(1)", "@cmd", "-2+3", "a|b`c"]


def _pipes(line: str) -> int:
    """Table separators in a Markdown line: `|` that are not escaped."""
    return line.count("|") - line.count("\\|")


def _assert_tables_intact(text: str) -> None:
    """Every table row has as many cells as its header; no HTML or link survives."""
    assert "<script>" not in text and "<i>" not in text
    assert not re.search(r"(?<!\\)\]\(", text)  # no link: every `](` is escaped
    width = None
    for line in text.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        width = width if width is not None else _pipes(line)
        assert _pipes(line) == width, line


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _hostile_data(tmp: Path) -> Path:
    data = tmp / HOSTILE
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i, name in enumerate(IDS):
        rf.png(data / "images", f"{name}.png", 24, 20, seed=i)
        rf.write_pillow(data / "masks" / f"{name}.png",
                        (rf.gradient(24, 20) > 128).astype("uint8"))
    return data


def test_evaluate_tables_escape_the_data_path_and_file_ids(tmp_path: Path, capsys) -> None:
    data, out = _hostile_data(tmp_path), tmp_path / "o"
    code, _, err = run_cli(capsys, "evaluate", f"folder:{data}", "--methods", "median",
                           "--noise", "rayleigh:0.25", "--size", "32", "--split", "all",
                           "--out", out, "--threads", "1")
    assert code == 0, err
    md = (out / "results.md").read_text(encoding="utf-8")
    _assert_tables_intact(md)
    title = md.splitlines()[0]
    assert title.startswith("# usdenoise evaluate folder:")
    assert title.endswith("\\#\\#\\#\\[a\\](b)")
    assert "&lt;script&gt;" in title and "\\`" in title and "\\#\\#\\#" in title
    # the document is cut at its first `###`: the one in the folder name no longer counts
    assert md.index("## Real-scan figures") < md.index("## Image-quality figures") \
        < md.index("### rayleigh 0.25")
    for name in ("results.csv", "per_image.csv"):
        rows = _csv(out / name)
        assert rows and all(r["method"] in ("noisy", "median") for r in rows)
    assert {r["data"] for r in _csv(out / "results.csv")} == {f"folder:{data}"}
    ids = {r["id"] for r in _csv(out / "per_image.csv")}
    assert ids == {"'=HYPERLINK(1)", "'@cmd", "'-2+3", "a|b`c"}  # formulas shown as text
    assert "<script>" not in (out / "report.html").read_text(encoding="utf-8")


def _study_rows() -> list[dict]:
    rows = []
    for arm, shift in (("none", 0.0), ("=evil|`<i>`", 0.05)):
        for noise in ("none", "rayleigh:0.5|<script>"):
            for i in range(4):
                dice = 0.8 + 0.01 * i + shift
                rows.append({"protocol": "A", "input": noise, "arm": arm, "strength": 1.0,
                             "id": IDS[i], "subject": IDS[i], "dice": dice, "hd95": 2.0,
                             "hc_abs_error_mm": 1.0, "area_bias": 0.0, "psnr": 20.0 + i})
    return rows


def test_study_tables_escape_data_inputs_arms_notes_and_ids(tmp_path: Path) -> None:
    noisy, arm = "rayleigh:0.5|<script>", "=evil|`<i>`"
    context = {
        "settings": {"data": f"folder:{HOSTILE}", "size": 32, "seed": 0, "quick": True,
                     "segmenter_arch": "unet<i>"},
        "splits": {"train": 4, "val": 2, "test": 4},
        "arms": [{"name": "none", "summary": "no denoising"},
                 {"name": arm, "summary": "a | b <i>x</i>"}],
        "notes": [f"protocol A segmenter reused from /runs/{HOSTILE}"],
        "strengths_chosen": [{"input": noisy, "arm": arm, "alpha": 1.0}],
    }
    curves = [{"input": noisy, "arm": arm, "alpha": 1.0, "val_dice": 0.8, "val_psnr": 20.0}]
    out = tmp_path / "study"
    write_study(out, rows=_study_rows(), curves=curves, context=context, examples=[],
                seed=0, resamples=50)
    md = (out / "study.md").read_text(encoding="utf-8")
    _assert_tables_intact(md)
    assert "&lt;script&gt;" in md and "=evil\\|\\`&lt;i&gt;\\`" in md
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert sum(line.startswith("### input:") for line in headings) == 2
    for name in ("study.csv", "per_image.csv", "strength.csv"):
        arms = {r["arm"] for r in _csv(out / name)}
        assert "'=evil|`<i>`" in arms and arm not in arms, name
    assert {r["id"] for r in _csv(out / "per_image.csv")} >= {"'=HYPERLINK(1)", "'@cmd"}


@pytest.mark.parametrize("text, expected", [
    ("a|b", "a\\|b"), ("`x`", "\\`x\\`"), ("<b>&", "&lt;b&gt;&amp;"), ("[l](u)", "\\[l\\](u)"),
    ("### h", "\\#\\#\\# h"), ("a\nb", "a b"), ("c:\\d", "c:\\\\d"),
])
def test_escape_markdown_each_special_character(text: str, expected: str) -> None:
    assert escape_markdown(text) == expected


def test_real_scan_table_escapes_method_labels_and_noise_names() -> None:
    from usdenoise.denoise.benchmark import real_scan_markdown

    records = [{"method": HOSTILE, "noise": "a|b", "level": "###", "n_images": 2,
                "speckle_index": 0.3, "edge_ratio": 0.97, "matched_reduction": 0.12},
               {"method": "noisy", "noise": "a|b", "level": "###", "n_images": 2,
                "speckle_index": 0.4, "edge_ratio": 1.0, "matched_reduction": 0.12}]
    md = real_scan_markdown(records)
    _assert_tables_intact(md)
    assert "###" not in md and "&lt;script&gt;" in md
