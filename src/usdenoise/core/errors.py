"""Errors that the command line turns into one line on stderr and exit code 2."""

from __future__ import annotations

import importlib
from types import ModuleType


class UsdenoiseError(ValueError):
    """Bad input: the message names the file or option and what is wrong with it."""


class MissingExtraError(UsdenoiseError, ImportError):
    """An optional dependency is not installed."""


def optional_import(module: str, *, extra: str) -> ModuleType:
    """Import a heavy optional package, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed: pip install 'usdenoise[{extra}]'"
        ) from exc


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (at most 200 characters), for error messages."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
