"""Result files: the Markdown table's bolding and direction, strict JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from usdenoise.reporting.tables import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    TABLE_COLUMNS,
    markdown_table,
    records_to_csv,
    records_to_json,
    write_results,
)


def rec(method: str, level: float = 0.5, **values) -> dict:
    return {"method": method, "noise": "rayleigh", "level": level, "dataset": "phantom",
            "n_images": 4, **values}


def table_rows(text: str) -> dict[str, list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return rows


def strict_json(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_every_table_column_has_a_direction() -> None:
    assert set(TABLE_COLUMNS) <= HIGHER_IS_BETTER | LOWER_IS_BETTER
    assert not HIGHER_IS_BETTER & LOWER_IS_BETTER
    assert "seconds_per_image" in LOWER_IS_BETTER and "psnr" in HIGHER_IS_BETTER


def test_best_per_column_bold_noisy_never() -> None:
    records = [
        rec("noisy", psnr=30.0, ssim=0.99, seconds_per_image=0.00001),  # best numbers, not bold
        rec("lee", psnr=24.0, ssim=0.80, seconds_per_image=0.004),
        rec("bm3d", psnr=26.0, ssim=0.70, seconds_per_image=1.5),
    ]
    rows = table_rows(markdown_table(records))
    assert rows["noisy"] == {"psnr": "30.00", "ssim": "0.990", "seconds per image": "0.0 ms"}
    assert rows["bm3d"]["psnr"] == "**26.00**" and rows["lee"]["psnr"] == "24.00"
    assert rows["lee"]["ssim"] == "**0.800**" and rows["bm3d"]["ssim"] == "0.700"
    # seconds: lower is better, and the units switch at one second
    assert rows["lee"]["seconds per image"] == "**4.0 ms**"
    assert rows["bm3d"]["seconds per image"] == "1.50 s"


def test_columns_without_values_are_left_out_and_missing_cells_dashed() -> None:
    records = [rec("noisy", psnr=20.0), rec("lee", psnr=22.0, enl=None),
               rec("tv", psnr=21.0, enl=5.0)]
    text = markdown_table(records)
    header = [line for line in text.splitlines() if line.startswith("| method")][0]
    assert "ssim" not in header and "enl" in header
    rows = table_rows(text)
    assert rows["lee"]["enl"] == "–" and rows["tv"]["enl"] == "**5.00**"


def test_one_table_per_noise_level_with_ties_bold() -> None:
    records = [rec("noisy", 0.25, psnr=25.0), rec("a", 0.25, psnr=27.0), rec("b", 0.25, psnr=27.0),
               rec("noisy", 0.5, psnr=20.0), rec("a", 0.5, psnr=21.0), rec("b", 0.5, psnr=23.0)]
    text = markdown_table(records)
    blocks = text.split("### ")[1:]
    assert [b.splitlines()[0] for b in blocks] == ["rayleigh 0.25 — phantom, 4 images",
                                                 "rayleigh 0.5 — phantom, 4 images"]
    first, second = (table_rows(b) for b in blocks)
    assert first["a"]["psnr"] == first["b"]["psnr"] == "**27.00**"
    assert second["b"]["psnr"] == "**23.00**" and second["a"]["psnr"] == "21.00"


def test_no_reference_group_title() -> None:
    text = markdown_table([{"method": "noisy", "noise": None, "level": None, "enl": 2.0},
                           {"method": "lee", "noise": None, "level": None, "enl": 9.0}])
    assert text.startswith("### images as they are (no reference)\n")
    assert table_rows(text)["lee"]["enl"] == "**9.00**"


def test_infinite_psnr_is_best_nan_is_never() -> None:
    records = [rec("noisy", psnr=20.0, ssim=0.5), rec("copy", psnr=math.inf, ssim=math.nan),
               rec("lee", psnr=25.0, ssim=0.6)]
    rows = table_rows(markdown_table(records))
    assert rows["copy"]["psnr"] == "**inf**" and rows["lee"]["psnr"] == "25.00"
    assert rows["copy"]["ssim"] == "–" and rows["lee"]["ssim"] == "**0.600**"


def test_json_is_strict_and_the_table_rebuilds_from_it() -> None:
    records = [rec("noisy", psnr=20.0, cnr=-math.inf), rec("copy", psnr=math.inf, ssim=math.nan,
                                                         params={"sigma": math.nan})]
    loaded = strict_json(records_to_json(records))
    assert loaded[1]["psnr"] == "inf" and loaded[1]["ssim"] is None
    assert loaded[0]["cnr"] == "-inf" and loaded[1]["params"] == {"sigma": None}
    assert markdown_table(loaded) == markdown_table(
        [rec("noisy", psnr=20.0, cnr=-math.inf), rec("copy", psnr=math.inf, ssim=None)])


def test_json_accepts_numpy_and_torch_scalars_and_paths() -> None:
    records = [rec("lee", psnr=np.float32(22.5), n=np.int64(3), enl=torch.tensor(4.0),
                   checkpoint=Path("runs/a.safetensors"))]
    loaded = strict_json(records_to_json(records))[0]
    assert loaded["psnr"] == pytest.approx(22.5) and loaded["n"] == 3 and loaded["enl"] == 4.0
    assert loaded["checkpoint"] == "runs/a.safetensors"


def test_csv_flat_columns_union_and_non_finite() -> None:
    records = [rec("noisy", psnr=20.0, params={}), rec("lee", psnr=math.inf, ssim=math.nan,
                                                     params={"window": 7}, extra=None)]
    rows = list(csv.DictReader(io.StringIO(records_to_csv(records))))
    assert "params" not in rows[0]  # nested values stay in JSON only
    assert rows[0]["ssim"] == "" and rows[0]["extra"] == ""
    assert float(rows[1]["psnr"]) == math.inf and math.isnan(float(rows[1]["ssim"]))
    assert rows[1]["method"] == "lee" and float(rows[0]["level"]) == 0.5


def test_write_results_writes_three_files(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    records = [rec("noisy", psnr=20.0), rec("lee", psnr=22.0)]
    paths = write_results(records, out, title="my run")
    assert [p.name for p in paths] == ["results.json", "results.csv", "results.md"]
    assert strict_json(paths[0].read_text()) == records
    assert paths[2].read_text().startswith("# my run\n")
    assert "**22.00**" in paths[2].read_text()
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json", "results.md"]
