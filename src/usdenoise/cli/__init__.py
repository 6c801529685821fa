"""The command line: the typer app (`app`), one module per command group."""

from usdenoise.cli.app import app, main

__all__ = ["app", "main"]
