"""File transactions: atomic writes, temporary files and staged output folders.

Every output is written to a temporary name and renamed when complete, and a command's
whole output folder is staged beside its target and published only once every file is
written, so a crash or a full disk never leaves a half-written file or folder behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from usdenoise.core.errors import UsdenoiseError, one_line


def publish_folder(staging: Path, out_dir: Path) -> None:
    """Move every entry of a finished staging folder into `out_dir`, replacing what is there.

    Commands write their whole output into a staging folder first, so a failure part-way
    leaves nothing behind; this is the last step, run only once everything is written.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for item in Path(staging).iterdir():
        target = Path(out_dir) / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)


def make_temp_file(folder: Path, *, prefix: str = ".tmp-", suffix: str = "") -> Path:
    """An empty temporary file in `folder` with the permissions of an ordinary new file.

    (mkstemp creates files readable by the owner only, which would leak into outputs.)
    """
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    The parent folder is created if needed. On any error the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise UsdenoiseError(f"{path}: is a folder, cannot write a file there")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UsdenoiseError(f"{path}: cannot create output folder, {blocker} is a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsdenoiseError(
            f"{path}: cannot create output folder {path.parent} ({one_line(exc)})"
        ) from exc
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsdenoiseError(f"{path}: output folder {path.parent} is not writable")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise UsdenoiseError(f"{path}: cannot write ({one_line(exc)})") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file through `atomic_write`."""
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def staging_path(out_dir: str | os.PathLike) -> Path:
    """Where `staged_dir` builds the output of `out_dir`: a hidden sibling folder."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.partial"


@contextmanager
def staged_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder; publish it into `out_dir` only if the block succeeds.

    On any error the staging folder is removed and `out_dir` is left as it was.
    """
    staging = staging_path(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        reason = exc.strerror or one_line(exc)
        raise UsdenoiseError(f"{out_dir}: cannot write there ({reason})") from None
    try:
        yield staging
        publish_folder(staging, Path(out_dir))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
