"""File transactions: atomic writes, temporary files and staged, owned output folders.

Every output is written to a temporary name and renamed when complete, and a command's
whole output folder is staged beside its target and published only once every file is
written, so a crash or a full disk never leaves a half-written file or folder behind.

Output folders are owned (see `staged_dir`): a run holds a lock beside the folder
(`.NAME.lock`, with its pid) while it works, so a second run into the same folder fails at
once; when it publishes it writes `.usdenoise-output.json` into the folder, listing the files
it wrote and the command, and `--overwrite` later removes only what that marker lists, never
the user's other files. `check_output_outside` refuses an output folder inside an input
folder, and `safe_child` keeps names taken from manifests, configs or DICOM tags inside
the output folder. Every file gets the permissions of an ordinary new file (the umask).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from usdenoise.core.errors import UsdenoiseError, one_line


def umask_mode(mode: int = 0o666) -> int:
    """`mode` with the process umask applied: the permissions of an ordinary new file."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def apply_umask(path: str | os.PathLike) -> None:
    """Give `path` the permissions of an ordinary new file (libraries that write files
    themselves, such as safetensors, create them readable by the owner only)."""
    os.chmod(path, umask_mode())


def make_temp_file(folder: Path, *, prefix: str = ".tmp-", suffix: str = "") -> Path:
    """An empty temporary file in `folder` with the permissions of an ordinary new file.

    (mkstemp creates files readable by the owner only, which would leak into outputs.)
    """
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    apply_umask(name)
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
    token = secrets.token_hex(4)
    name = f".{path.name}.{token}.tmp{path.suffix}"
    if len(os.fsencode(name)) > 255:  # a long name: the temporary one must fit too
        name = f".{token}.tmp{path.suffix}"[:255]
    tmp = path.with_name(name)
    try:
        yield tmp
        crash_point(f"rename:{path.name}")
        os.replace(tmp, path)
    except OSError as exc:
        raise UsdenoiseError(f"{path}: cannot write ({exc.strerror or one_line(exc)})") from None
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


CRASH_ENV = "USDENOISE_CRASH_AT"
_crash_counts: dict[str, int] = {}


def crash_point(event: str) -> None:
    """Test hook of the kill-and-resume tests (tests/training/test_kill_resume.py).

    When the environment variable USDENOISE_CRASH_AT is `EVENT@K` (or `EVENT`: K = 1), the
    process SIGKILLs itself the K-th time it reaches `event`: no `finally`, atexit or cleanup
    runs, as with the OOM killer or a power cut. Events: `step` (after an optimizer step of
    the training loop) and `rename:NAME` (in `atomic_write`, once the temporary file of NAME
    is complete and before it replaces NAME). Unset, it costs one environment lookup."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    name, _, count = wanted.partition("@")
    if name != event:
        return
    _crash_counts[event] = seen = _crash_counts.get(event, 0) + 1
    if seen == int(count or 1):
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file through `atomic_write`."""
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def staging_path(out_dir: str | os.PathLike) -> Path:
    """Where `staged_dir` builds the output of `out_dir`: a hidden sibling folder."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.partial"


MARKER = ".usdenoise-output.json"
MARKER_FORMAT = "usdenoise-output/1"


def lock_path(out_dir: str | os.PathLike) -> Path:
    """The lock of `out_dir` while a run writes it: a hidden sibling file holding the pid."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.lock"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    return True


def _lock_holder(lock: Path) -> int | None:
    """The pid in a lock file, or None when it cannot be read (half-written, removed)."""
    try:
        return int(json.loads(lock.read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def folder_lock(out_dir: str | os.PathLike, *, command: str = "usdenoise") -> Iterator[Path]:
    """Hold the lock of `out_dir` for the block: a second run into the same folder fails at
    once with a one-line error naming the holder's pid; a lock left by a dead process (a
    killed run) is taken over."""
    out_dir = Path(out_dir)
    lock = lock_path(out_dir)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsdenoiseError(f"{out_dir}: cannot write there "
                             f"({exc.strerror or one_line(exc)})") from None
    text = json.dumps({"pid": os.getpid(), "command": command, "started": time.time()})
    for _attempt in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, umask_mode())
        except FileExistsError:
            holder = _lock_holder(lock)
            if holder is None:
                try:  # unreadable: a lock being written right now, or a broken one
                    age = time.time() - lock.stat().st_mtime
                except OSError:
                    continue
                if age < 10:
                    raise UsdenoiseError(f"{out_dir}: in use by another usdenoise run "
                                         f"(lock {lock})") from None
            elif _pid_alive(holder):
                raise UsdenoiseError(
                    f"{out_dir}: in use by another usdenoise run (pid {holder}, lock {lock}); "
                    "wait for it or choose another folder"
                ) from None
            try:  # stale: its process is gone
                lock.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise UsdenoiseError(f"{out_dir}: cannot remove the stale lock {lock} "
                                     f"({exc.strerror or one_line(exc)})") from None
            continue
        except OSError as exc:
            raise UsdenoiseError(f"{out_dir}: cannot write there "
                                 f"({exc.strerror or one_line(exc)})") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        break
    else:
        raise UsdenoiseError(f"{out_dir}: in use by another usdenoise run (lock {lock})")
    try:
        yield lock
    finally:
        if _lock_holder(lock) == os.getpid():
            try:
                lock.unlink()
            except OSError:
                pass


def read_marker(out_dir: str | os.PathLike) -> dict | None:
    """The ownership marker of `out_dir` (what an earlier run published), or None."""
    marker = Path(out_dir) / MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return None
    return data


def _owned_files(out_dir: Path, marker: dict | None) -> list[Path]:
    """Files the marker lists that are still in `out_dir` (never a path outside it)."""
    if marker is None:
        return []
    owned = []
    for name in marker.get("files", []):
        if not isinstance(name, str):
            continue
        try:
            path = safe_child(out_dir, name)
        except UsdenoiseError:
            continue
        if path.is_file() or path.is_symlink():
            owned.append(path)
    return owned


def _remove_owned(out_dir: Path, marker: dict | None) -> None:
    """Remove what an earlier run published (and the folders it leaves empty), nothing else."""
    folders: set[Path] = set()
    for path in _owned_files(out_dir, marker):
        path.unlink()
        folders.update(p for p in path.parents if p != out_dir and out_dir in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()  # only when empty: the user's own files keep their folder
        except OSError:
            pass


def _staged_files(staging: Path) -> list[Path]:
    return sorted(p.relative_to(staging) for p in staging.rglob("*")
                  if p.is_file() or p.is_symlink())


def _publish_owned(staging: Path, out_dir: Path, *, command: str, overwrite: bool | None,
                   marker: dict | None) -> None:
    """Merge the staged files into `out_dir`, file by file, then write the marker."""
    files = _staged_files(staging)
    owned = {p.resolve() for p in _owned_files(out_dir, marker)}
    for rel in files:
        target = out_dir / rel
        if target.is_dir() and not target.is_symlink():
            raise UsdenoiseError(f"{target}: is a folder, cannot write the file {rel} there")
        if overwrite is False and target.exists() and target.resolve() not in owned:
            raise UsdenoiseError(f"{target}: already exists (use --overwrite)")
        for parent in list(reversed(target.parents)):
            if parent.exists() and not parent.is_dir() and out_dir in (parent, *parent.parents):
                raise UsdenoiseError(f"{target}: cannot create the folder, {parent} is a file")
    if overwrite:
        _remove_owned(out_dir, marker)
    kept: list[str] = []
    if not overwrite and marker is not None:  # an earlier run's files that stay
        kept = [str(p.relative_to(out_dir)) for p in _owned_files(out_dir, marker)]
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = sorted(str(p.relative_to(staging)) for p in staging.rglob("*")
                     if p.is_dir() and not p.is_symlink())
    for folder in folders:  # empty ones too (an examples/ folder with nothing to show)
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    for rel in files:
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target)
    write_marker(out_dir, command=command, files=[*kept, *(str(rel) for rel in files)],
                 folders=folders)


def write_marker(out_dir: Path, *, command: str, files: Iterable[str],
                 folders: Iterable[str]) -> None:
    """Write `out_dir`'s MARKER (atomically): the `command` that owns the folder and the
    files (and folders) it wrote there, relative names, sorted and each listed once."""
    document = {"format": MARKER_FORMAT, "command": command, "pid": os.getpid(),
                "published": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "folders": sorted(set(folders)), "files": sorted(set(files))}
    write_text_atomic(out_dir / MARKER, json.dumps(document, indent=2) + "\n")


@contextmanager
def staged_dir(
    out_dir: str | os.PathLike,
    *,
    command: str = "usdenoise",
    overwrite: bool | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    option: str = "--out",
) -> Iterator[Path]:
    """Yield an empty staging folder; publish it into `out_dir` only if the block succeeds.

    On any error the staging folder is removed and `out_dir` is left as it was. While the
    block runs, `out_dir` is locked (`folder_lock`): a second run into it fails at once.
    Publishing moves the staged files in one by one and writes `.usdenoise-output.json`
    (the files and the command) into `out_dir`; files of the user's that the run did not
    write are never touched.

    `overwrite`: True removes what the marker of an earlier run lists (its stale files too)
    before publishing; False refuses a folder that holds an earlier run's output or a file
    this run would replace; None (the caller has made its own check) replaces only the files
    it writes again. `inputs`: input data folders `out_dir` must not be inside
    (`check_output_outside`, naming `option`).
    """
    out_dir = Path(out_dir)
    check_output_outside(out_dir, [Path(p) for p in inputs], option=option)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsdenoiseError(f"{option} {out_dir}: is a file, not a folder")
    with folder_lock(out_dir, command=command):
        marker = read_marker(out_dir)
        if overwrite is False and _owned_files(out_dir, marker):
            raise UsdenoiseError(
                f"{out_dir}: holds the output of an earlier `usdenoise "
                f"{marker.get('command', '') if marker else ''}` run (use --overwrite)")
        staging = staging_path(out_dir)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(parents=True)
        except OSError as exc:
            reason = exc.strerror or one_line(exc)
            raise UsdenoiseError(f"{out_dir}: cannot write there ({reason})") from None
        try:
            yield staging
            try:
                _publish_owned(staging, out_dir, command=command, overwrite=overwrite,
                               marker=marker)
            except OSError as exc:
                raise UsdenoiseError(f"{out_dir}: cannot publish the output "
                                     f"({exc.strerror or one_line(exc)})") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------- path safety


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve(strict=False)


def check_output_outside(out_dir: str | os.PathLike, inputs: list[Path], *,
                         option: str = "--out") -> None:
    """Refuse an output folder equal to or inside an input data folder (or input file's
    folder): writing there would mix results with, or replace, the user's data."""
    out = _resolved(out_dir)
    for item in inputs:
        if item is None:
            continue
        source = _resolved(item)
        if source.is_file():
            continue  # a single input file: only its own name is protected, by the caller
        if out == source or source in out.parents:
            where = "is" if out == source else "is inside"
            raise UsdenoiseError(
                f"{option} {out_dir}: {where} the input folder {item}; write the output "
                "to a folder outside the input data"
            )


def input_folders(spec: str | None) -> list[Path]:
    """The folders a DATA spec reads (`hc18:PATH+folder:PATH2` -> [PATH, PATH2]; the built-in
    phantom reads none), for `check_output_outside`."""
    paths = []
    for part in str(spec or "").split("+"):
        name, _, arg = part.strip().partition(":")
        if arg and name.strip().lower() != "phantom":
            paths.append(Path(arg).expanduser())
    return paths


def safe_child(out_dir: str | os.PathLike, name: str) -> Path:
    """`out_dir / name` for a name taken from data (manifest ids, config values, DICOM tags),
    refused with a one-line error when it would land outside `out_dir`: absolute names,
    `..` parts, NUL bytes, empty names, or a symlink inside `out_dir` that points out."""
    text = str(name)
    if not text or "\x00" in text or text.strip() in ("", ".", ".."):
        raise UsdenoiseError(f"{out_dir}: unusable output name {text!r}")
    relative = Path(text)
    if relative.is_absolute() or relative.drive or any(p == ".." for p in relative.parts) \
            or ".." in text.replace("\\", "/").split("/"):
        raise UsdenoiseError(f"{out_dir}: output name {text!r} would write outside the "
                             "output folder")
    root = _resolved(out_dir)
    target = _resolved(Path(out_dir) / relative)
    if target != root and root not in target.parents:
        raise UsdenoiseError(f"{out_dir}: output name {text!r} would write outside the "
                             "output folder")
    return Path(out_dir) / relative


_TEMP_NAME = re.compile(r"^(\.tmp-.*|\.(.+\.)?[0-9a-f]{8}\.tmp(\.[^.]*)?)$")


def clean_stale_temps(folder: str | os.PathLike, *, older_than_s: float = 0.0) -> list[Path]:
    """Remove the temporary files a killed run left in `folder` (not in subfolders):
    `.tmp-*` (make_temp_file) and `.NAME.XXXXXXXX.tmp*` (atomic_write). Call it while
    holding the folder's lock (nobody else is writing); returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.iterdir():
        name = path.name
        if not _TEMP_NAME.match(name) or not path.is_file():
            continue
        try:
            if now - path.stat().st_mtime < older_than_s:
                continue
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed
