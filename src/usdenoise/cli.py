"""Command line: parses arguments and calls library functions; no work happens here."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from usdenoise import __version__
from usdenoise.errors import UsdenoiseError

app = typer.Typer(
    name="usdenoise",
    help="Speckle removal for ultrasound images, benchmarks, and the downstream check.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"usdenoise {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    """usdenoise command line."""


@app.command("list")
def list_command() -> None:
    """Show the registered denoisers, noise models, metrics, losses and data sets."""
    from usdenoise.registries import families

    out = Console()
    for family, entries in families().items():
        table = Table(title=family, show_lines=False, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        for name, description in entries:
            table.add_row(name, description)
        out.print(table)


# ---- commands added by later modules go above this line ----


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input becomes one line on stderr and exit code 2, no traceback."""
    try:
        app(args=argv, prog_name="usdenoise")
    except UsdenoiseError as exc:
        print(f"usdenoise: error: {exc}", file=sys.stderr)
        sys.exit(2)
