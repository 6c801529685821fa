"""`usdenoise report DIR`: (re)build DIR/report.html; and the report every run ends with."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from usdenoise.core.errors import UsdenoiseError, one_line


def _current_context():
    """The running command's context: typer (0.29+) bundles its own click, older typer uses
    click itself; None outside a command."""
    import importlib

    for name in ("typer._click.globals", "click.globals"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        ctx = module.get_current_context(silent=True)
        if ctx is not None:
            return ctx
    return None


def invoked_command() -> str | None:
    """The running command as a person would type it: the command path and every argument
    and option given on the command line (defaults left out), or None outside a command."""
    ctx = _current_context()
    if ctx is None:
        return None
    try:
        words = ctx.command_path.split()
        for param in ctx.command.params:
            source = ctx.get_parameter_source(param.name) if param.name else None
            if getattr(source, "name", None) not in ("COMMANDLINE", "ENVIRONMENT"):
                continue
            value = ctx.params.get(param.name)
            values = list(value) if isinstance(value, list | tuple) else [value]
            if param.param_type_name == "argument":
                words += [str(v) for v in values]
            elif getattr(param, "is_flag", False):
                words.append(param.opts[0] if value else (param.secondary_opts or param.opts)[0])
            else:
                for v in values:
                    words += [param.opts[0], str(v)]
        return shlex.join(words)
    except (AttributeError, IndexError, KeyError, TypeError):  # the command line is a nicety
        return None


def write_run_report(folder: Path, *, command: str | None = None) -> Path | None:
    """Build FOLDER/report.html at the end of a run. The run's results are already written,
    so a report that cannot be built is a warning, not a failed run."""
    from usdenoise.reporting.html import build_report

    try:
        return build_report(folder, command=command or invoked_command())
    except Exception as exc:  # noqa: BLE001  (the results are safe; say why, carry on)
        print(f"usdenoise: warning: report not written ({one_line(exc)}); rebuild it with "
              f"usdenoise report {shlex.quote(str(folder))}", file=sys.stderr)
        return None


def report_command(
    folder: Path = typer.Argument(..., metavar="DIR",
                                  help="output folder of evaluate, demo, train or study"),
) -> None:
    """Build DIR/report.html: one self-contained page (tables, plots, images) from the
    results in the folder (results.json, metrics.csv + model.json, or study.json)."""
    from usdenoise.reporting.html import build_report

    if not folder.exists():
        raise UsdenoiseError(f"{folder}: no such folder")
    print(build_report(folder))
