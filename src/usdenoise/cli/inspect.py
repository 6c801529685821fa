"""`usdenoise inspect`: measure the native speckle of an image or a data set
(`usdenoise.noise.estimate`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from usdenoise.cli.options import DATA_HELP
from usdenoise.core.errors import UsdenoiseError


def _number(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _row(name: str, record: dict) -> list[str]:
    physics = record.get("physics") or {}
    return [
        name,
        str(record["patches"]),
        _number(record["axial_fwhm_px"], ".2f"),
        _number(record["lateral_fwhm_px"], ".2f"),
        _number(record["level"], ".4f"),
        _number(physics.get("sigma"), ".4f"),
        _number(physics.get("axial_sigma"), ".2f"),
        _number(physics.get("lateral_sigma"), ".2f"),
        _number(physics.get("frequency"), ".2f"),
    ]


def inspect_command(
    target: str = typer.Argument(..., help=f"an image file, or a data set: {DATA_HELP}"),
    out: Path | None = typer.Option(None, help="also write the estimates to this JSON file"),
    limit: int | None = typer.Option(None, help="data sets: only the first N images"),
    patch: int = typer.Option(32, help="side of the tiles searched for homogeneous speckle, px"),
) -> None:
    """Measure native speckle: homogeneous patches, grain size (autocorrelation FWHM, axial =
    along depth, lateral = across), level (displayed speckle std) and the `physics` noise
    parameters that reproduce it."""
    from usdenoise.noise.estimate import estimate_dataset, estimate_speckle

    if limit is not None and limit < 1:
        raise UsdenoiseError(f"--limit {limit}: must be at least 1")
    if out is not None and out.suffix.lower() != ".json":
        raise UsdenoiseError(f"--out {out}: must be a .json file")
    table = Table(title=f"native speckle of {target}", title_justify="left")
    # grain: autocorrelation FWHM in px; physics: sigma, axial_sigma, lateral_sigma, frequency
    for column in ("image", "patches", "axial", "lateral", "level", "sigma", "ax_sig",
                   "lat_sig", "freq"):
        table.add_column(column)
    path = Path(target).expanduser()
    if path.is_file():
        from usdenoise.io import read_image

        estimate = estimate_speckle(read_image(path), patch=patch)
        record = {"image": str(path), **estimate.to_dict()}
        table.add_row(*_row(path.name, record))
        document: dict = {"target": str(path), "kind": "image", "estimate": record}
        if not estimate.found:
            Console(stderr=True).print(f"{path.name}: no homogeneous patches ({estimate.reason})")
    else:
        if ":" not in target and target.strip().lower() != "phantom":
            raise UsdenoiseError(f"{target}: no such image file, and not a DATA spec ({DATA_HELP})")
        from usdenoise.data import load_dataset

        dataset = load_dataset(target)
        aggregate = estimate_dataset(dataset, limit=limit, patch=patch)
        record = aggregate.to_dict()
        for item in record["per_image"]:
            table.add_row(*_row(item["id"], item))
        table.add_row(*_row(f"median ({aggregate.measured}/{aggregate.images})", record),
                      style="bold")
        document = {"target": target, "kind": "dataset", "estimate": record}
    Console().print(table)
    if out is not None:
        from usdenoise.core.files import write_text_atomic

        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(document, indent=2) + "\n")
        Console(stderr=True).print(f"wrote {out}")
