"""Run the `usdenoise` entry point in-process and capture what it prints."""

from __future__ import annotations

from usdenoise.cli.app import main


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `usdenoise ARGS` (one-line errors exit with 2)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
