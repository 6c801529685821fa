"""Parsing of the short `name:value` strings used on the command line (`rayleigh:0.25`)."""

from __future__ import annotations

import math

from usdenoise.core.errors import UsdenoiseError


def split_spec(text: str, *, what: str) -> tuple[str, str | None]:
    """`"rayleigh:0.25"` -> `("rayleigh", "0.25")`; `"phantom"` -> `("phantom", None)`."""
    text = text.strip()
    if not text:
        raise UsdenoiseError(f"empty {what} specification")
    name, sep, arg = text.partition(":")
    name = name.strip().lower()
    if not name:
        raise UsdenoiseError(f"{what} {text!r}: missing name before ':'")
    return name, (arg.strip() if sep else None)


def parse_number(text: str, *, what: str, minimum: float | None = 0.0) -> float:
    """A finite float, at least `minimum`; the error names `what`."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsdenoiseError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UsdenoiseError(f"{what}: {text!r} is not a finite number")
    if minimum is not None and value < minimum:
        raise UsdenoiseError(f"{what}: {value:g} is below the minimum {minimum:g}")
    return value


def parse_level_range(text: str, *, what: str) -> tuple[float, float]:
    """`"0.25"` -> (0.25, 0.25); `"0.1-0.75"` -> (0.1, 0.75)."""
    low_text, sep, high_text = text.partition("-")
    if sep and low_text.strip():
        low = parse_number(low_text, what=what)
        high = parse_number(high_text, what=what)
        if high < low:
            raise UsdenoiseError(f"{what}: range {text!r} runs backwards")
        return low, high
    value = parse_number(text, what=what)
    return value, value


def parse_noise_list(text: str) -> list[tuple[str, str]]:
    """`"rayleigh:0.1,0.25,gamma:4"` -> [("rayleigh","0.1"), ("rayleigh","0.25"), ("gamma","4")].

    A bare number after a comma reuses the previous noise name.
    """
    out: list[tuple[str, str]] = []
    current: str | None = None
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise UsdenoiseError(f"noise list {text!r}: empty entry")
        if ":" in part or not _looks_numeric(part):
            name, arg = split_spec(part, what="noise")
            current = name
            if arg is None:
                raise UsdenoiseError(f"noise {part!r}: give a strength, e.g. {name}:0.25")
            out.append((name, arg))
        else:
            if current is None:
                raise UsdenoiseError(f"noise list {text!r}: level {part!r} has no noise name")
            out.append((current, part))
    return out


def _looks_numeric(text: str) -> bool:
    return text[:1].isdigit() or text[:1] in ".-+"
