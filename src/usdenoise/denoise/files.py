"""`usdenoise denoise`: denoise files and folders, keeping names, formats and bit depth."""

from __future__ import annotations

import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from usdenoise.core.distributed import (
    World,
    all_gather,
    check_together,
    joined,
    share,
    together,
)
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import (
    MARKER,
    clean_stale_temps,
    folder_lock,
    read_marker,
    safe_child,
    write_marker,
    write_text_atomic,
)
from usdenoise.core.progress import make_progress
from usdenoise.denoise.registry import make_denoiser
from usdenoise.io import IMAGE_SUFFIXES, image_info, read_frames, write_dicom, write_image
from usdenoise.io.metaimage import write_metaimage_like


@dataclass
class DenoiseSummary:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    #: inputs left alone with `skip_existing`: an earlier run already wrote their outputs
    existing: list[Path] = field(default_factory=list)


def collect_inputs(inputs: list[Path], *, recursive: bool) -> list[tuple[Path, Path]]:
    """(file, path relative to the output folder) for every supported image in the inputs."""

    found: list[tuple[Path, Path]] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(
                p for p in item.glob(pattern)
                if p.is_file() and _suffix(p) in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if not files:
                raise UsdenoiseError(f"{item}: no supported images in this folder")
            found += [(p, p.relative_to(item)) for p in files]
        elif item.is_file():
            found.append((item, Path(item.name)))
        else:
            raise UsdenoiseError(f"{item}: no such file or folder")
    return found


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix.lower()


def _check_out_dir(inputs: list[Path], out_dir: Path) -> None:
    out = out_dir.resolve()
    for item in inputs:
        folder = Path(item).resolve()
        if Path(item).is_dir() and (out == folder or folder in out.parents):
            raise UsdenoiseError(f"--out {out_dir} is inside the input folder {item}")


def output_path(relative: Path, out_dir: Path, *, dicom_as: str,
                is_dicom: bool | None = None) -> Path:
    """Where an input goes: same relative name; DICOM becomes `.png` with `dicom_as="png"`."""
    if is_dicom is None:
        is_dicom = _suffix(relative) in {".dcm", ".dicom", ""}
    if is_dicom and dicom_as == "png":
        return out_dir / relative.with_suffix(".png")
    return out_dir / relative


def frame_paths(target: Path, frames: int) -> list[Path]:
    """One file for a single frame; `<stem>_0000<suffix>`, ... for several (a cine as PNGs)."""
    if frames <= 1:
        return [target]
    return [target.with_name(f"{target.stem}_{i:04d}{target.suffix}") for i in range(frames)]


def _is_dicom(info: Any) -> bool:
    return str(info.format).lower() == "dicom"


def _one_file(info: Any, target: Path, dicom_as: str) -> bool:
    """Whether all frames go back into one file in the input's own layout (DICOM with
    `dicom_as="dicom"`, MetaImage written as `.mha`) rather than one image per frame."""
    if _is_dicom(info):
        return dicom_as == "dicom"
    return str(info.format) == "MetaImage" and target.suffix.lower() == ".mha"


def machine_threads() -> int:
    """The cores this process may run on (the CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# one denoiser per worker process, built once
_WORKER_DENOISER: Any = None


def init_worker(method: str, params: dict[str, Any], threads: int = 1) -> None:
    """Pool initializer: `threads` torch threads (default 1) and one denoiser per worker."""
    global _WORKER_DENOISER

    torch.set_num_threads(max(1, int(threads)))
    _WORKER_DENOISER = make_denoiser(method, **params)


def denoise_in_worker(batch: torch.Tensor) -> torch.Tensor:
    """`_WORKER_DENOISER.denoise(batch)` in a pool worker (for in-memory images)."""
    return _WORKER_DENOISER.denoise(batch)


def _denoise_one(source: Path, target: Path, dicom_as: str, denoiser: Any = None,
                 on_frame: Any = None) -> list[Path]:
    """Denoise every frame of one file and write it; returns the files written.
    `on_frame()` is called after each frame (the progress bar counts frames)."""

    denoiser = denoiser or _WORKER_DENOISER
    try:
        info = image_info(source)
        frames = read_frames(source)  # [F, 1, H, W]
        results = []
        for frame in frames:
            results.append(denoiser.denoise(frame[None]))
            if on_frame is not None:
                on_frame()
        outputs = torch.cat(results)
    except UsdenoiseError as exc:  # the denoiser's own messages do not name the file
        message = str(exc)
        named = message if str(source) in message else f"{source}: {message}"
        raise UsdenoiseError(named) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    if _is_dicom(info) and dicom_as == "dicom":
        write_dicom(target, outputs, template=source)
        return [target]
    if _one_file(info, target, dicom_as):  # MetaImage: the input's layout (PSFHS: 3 planes)
        write_metaimage_like(target, outputs.numpy(), template=source)
        return [target]
    bit_depth = 16 if (info.bit_depth or 8) > 8 else 8
    written = []
    for path, frame in zip(frame_paths(target, len(outputs)), outputs, strict=True):
        write_image(path, frame, bit_depth=bit_depth)  # a cine as PNGs: one file per frame
        written.append(path)
    return written


def denoise_files(
    inputs: list[Path],
    *,
    out_dir: Path,
    method: str,
    params: dict[str, Any],
    recursive: bool = False,
    overwrite: bool = False,
    skip_existing: bool = False,
    workers: int = 1,
    strict: bool = False,
    dicom_as: str = "dicom",
    threads: int | None = None,
) -> DenoiseSummary:
    """Denoise every input image into out_dir; unreadable files are skipped (or stop if strict).

    `threads`: torch threads (`torch.set_num_threads`) of this process, or of each worker
    with `workers > 1` (default there: 1 per worker); None leaves this process's setting.
    When every file fails, that is a UsdenoiseError (nothing was denoised).

    Every header is read, and every output name checked, before anything is written. Files
    that cannot be read, or are smaller than the method's window, are skipped with a warning
    and listed in `summary.skipped`; with `strict` the first one stops the run, and the files
    this run already wrote are removed again.

    Each output is published as soon as it is complete (atomically, never half-written), and
    the folder's `.usdenoise-output.json` lists this run's outputs before the first is
    written, so a killed run can be continued: with `skip_existing`, inputs whose outputs an
    earlier denoise run wrote into `out_dir` are left alone and listed in `summary.existing`;
    a non-empty folder that no `usdenoise denoise` wrote is refused. The folder is locked
    while the run works.

    Under torchrun every process takes its share of the inputs (input i goes to process
    i % world size); rank 0 holds the lock and writes the marker, and every process returns
    the merged summary.
    """

    if dicom_as not in {"dicom", "png"}:
        raise UsdenoiseError(f"--dicom-as {dicom_as!r}: choose dicom or png")
    if workers < 1:
        raise UsdenoiseError(f"--workers {workers}: must be at least 1")
    if threads is not None and threads < 1:
        raise UsdenoiseError(f"--threads {threads}: must be at least 1")
    if skip_existing and overwrite:
        raise UsdenoiseError("give either --skip-existing or --overwrite, not both")
    if threads is not None and workers == 1:
        torch.set_num_threads(int(threads))
    with joined() as world:  # first: a network then goes to this process's own GPU
        denoiser = make_denoiser(method, **params)  # unknown method / bad parameter: fail first
        out_dir = Path(out_dir)
        _check_out_dir(inputs, out_dir)
        files = collect_inputs(inputs, recursive=recursive)
        run = _Run(out_dir=out_dir, denoiser=denoiser, method=method, params=params,
                   overwrite=overwrite, skip_existing=skip_existing, strict=strict,
                   dicom_as=dicom_as, world=world)
        return run.execute(files, workers=workers, worker_threads=threads or 1)


@dataclass
class _Run:
    """One `denoise_files` call in one process: plan its share, lock, write, merge."""

    out_dir: Path
    denoiser: Any
    method: str
    params: dict[str, Any]
    overwrite: bool
    skip_existing: bool
    strict: bool
    dicom_as: str
    world: World
    summary: DenoiseSummary = field(default_factory=DenoiseSummary)
    positions: dict[Path, int] = field(default_factory=dict)  # input -> its place in the list

    def execute(self, files: list[tuple[Path, Path]], *, workers: int,
                worker_threads: int) -> DenoiseSummary:
        world, out_dir = self.world, self.out_dir
        self.positions = {source: i for i, (source, _) in enumerate(files)}
        marker = read_marker(out_dir) if out_dir.is_dir() else None
        if self.skip_existing:
            _check_continuable(out_dir, marker)
        listed = {n for n in (marker or {}).get("files", []) if isinstance(n, str)}
        with together(world):
            jobs, targets = self._plan(share(files, world), listed)
        every_target = all_gather(targets, world)
        if world.distributed:  # the same output name from two processes' shares
            _check_unique_targets(every_target)
        counts = all_gather((len(jobs), self.summary.skipped, self.summary.existing), world)
        if not sum(n for n, _, _ in counts):
            merged = self._merged([([], skipped, existing) for _, skipped, existing in counts])
            if merged.existing:
                return merged  # every input was denoised by an earlier run: nothing to do
            reason = f" ({merged.skipped[0][1]})" if merged.skipped else ""
            raise UsdenoiseError(f"no image to denoise: every input was skipped{reason}")
        with ExitStack() as lock:
            created = not out_dir.exists()
            with together(world):
                if world.is_main:  # rank 0 owns the folder for the whole run
                    lock.enter_context(folder_lock(out_dir, command="denoise"))
                    self._claim(marker, [name for names in every_target for name in names],
                                clean=self.skip_existing and marker is not None)
            error = self._write(jobs, workers, worker_threads)
            reports = all_gather((self.summary.written, self.summary.skipped,
                                  self.summary.existing, error is not None), world)
            merged = self._merged([r[:3] for r in reports])
            failed = any(r[3] for r in reports)
            if world.is_main:
                try:
                    self._finish(merged, marker, failed=failed, created=created)
                except Exception as exc:  # raised below, once the others know
                    error = error or exc
            check_together(error, world)
        if not merged.written and not merged.existing:
            first = merged.skipped[0][1] if merged.skipped else "no output"
            raise UsdenoiseError(f"nothing denoised: all {len(merged.skipped)} input file(s) "
                                 f"failed (first: {first})")
        return merged

    def _finish(self, merged: DenoiseSummary, marker: dict | None, *, failed: bool,
                created: bool) -> None:
        """Rank 0, still holding the lock: the marker lists what the run wrote; a strict
        stop removes it all again, and a run that wrote nothing leaves the folder as it was."""
        out_dir = self.out_dir
        if failed and self.strict:  # stopping: leave no output from this run behind
            _remove_outputs(merged.written, out_dir, remove_root=False)
            _restore_marker(out_dir, marker, remove_root=created)
        elif not merged.written and not merged.existing:
            _restore_marker(out_dir, marker, remove_root=created)
        else:
            _write_marker(out_dir, _kept_files(out_dir, marker)
                          + [str(p.relative_to(out_dir)) for p in merged.written])

    def _skip(self, source: Path, message: str) -> None:
        if self.strict:
            raise UsdenoiseError(message)
        warnings.warn(f"skipped {message}", stacklevel=5)
        self.summary.skipped.append((source, message))

    def _plan(self, files: list[tuple[Path, Path]], listed: set[str]
              ) -> tuple[list[tuple[Path, Path, int]], list[str]]:
        """The jobs of this share and the output names they will write (relative to the
        folder); with skip_existing, inputs whose outputs an earlier run wrote (`listed` in
        its marker) go to summary.existing."""
        denoiser, out_dir = self.denoiser, self.out_dir
        jobs: list[tuple[Path, Path, int]] = []
        names: list[str] = []
        planned: dict[Path, Path] = {}  # output file -> its input, to catch two inputs, one output
        for source, relative in files:
            try:
                info = image_info(source)
            except UsdenoiseError as exc:
                self._skip(source, str(exc))
                continue
            smallest = min(info.height or 0, info.width or 0)
            if smallest < getattr(denoiser, "min_size", 1):
                self._skip(source, f"{source}: image {info.height}x{info.width} is smaller than "
                                   f"the {denoiser.min_size}-pixel minimum of {self.method} "
                                   "with these parameters")
                continue
            target = output_path(relative, out_dir, dicom_as=self.dicom_as,
                                 is_dicom=_is_dicom(info))
            one_file = _one_file(info, target, self.dicom_as)
            paths = frame_paths(target, 1 if one_file else (info.frames or 1))
            done = 0
            for path in paths:
                if path.resolve() == source.resolve():
                    raise UsdenoiseError(f"{path}: would overwrite its own input")
                if path.resolve() in planned:
                    raise UsdenoiseError(
                        f"{source} and {planned[path.resolve()]} would both be written to {path}"
                    )
                if path.exists() and not self.overwrite:
                    name = str(path.relative_to(out_dir))
                    if self.skip_existing and name in listed:
                        done += 1
                    elif self.skip_existing:
                        raise UsdenoiseError(
                            f"{path}: output exists but no earlier `usdenoise denoise` into "
                            f"{out_dir} wrote it (use --overwrite)")
                    elif name in listed:
                        raise UsdenoiseError(f"{path}: output exists (use --overwrite, or "
                                             "--skip-existing to keep the earlier run's)")
                    else:
                        raise UsdenoiseError(f"{path}: output exists (use --overwrite)")
                planned[path.resolve()] = source
            if paths and done == len(paths):  # all its outputs are there: done earlier
                self.summary.existing.append(source)
                continue
            # some frames of a cine written before a kill: this run writes them all again
            jobs.append((source, target, max(1, info.frames or 1)))
            names += [str(p.relative_to(out_dir)) for p in paths]
        return jobs, names

    def _claim(self, marker: dict | None, names: list[str], *, clean: bool) -> None:
        """Rank 0, holding the lock: create the folder and list this run's outputs in the
        marker before any is written, so a killed run's folder stays continuable."""
        out_dir = self.out_dir
        if (read_marker(out_dir) if out_dir.is_dir() else None) != marker:
            raise UsdenoiseError(f"{out_dir}: changed by another usdenoise run while this one "
                                 "read the inputs; run it again")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsdenoiseError(f"{out_dir}: cannot create folder ({exc.strerror})") from None
        if clean:  # a killed run's temporary files (we hold the lock: nobody is writing)
            for folder in {out_dir, *((out_dir / n).parent for n in names)}:
                clean_stale_temps(folder)
        _write_marker(out_dir, _kept_files(out_dir, marker) + names)

    def _write(self, jobs: list[tuple[Path, Path, int]], workers: int,
               worker_threads: int) -> Exception | None:
        """Denoise this share; an error is returned (to be raised once every process knows)."""
        try:
            _run_jobs(jobs, self.summary, self.denoiser, self.method, self.params, workers,
                      self.strict, self.dicom_as, worker_threads, show=self.world.is_main)
        except Exception as exc:
            return exc
        except BaseException:  # Ctrl-C: torchrun stops every process; no collective now
            if self.strict:
                _remove_outputs(self.summary.written, self.out_dir, remove_root=False)
            raise
        return None

    def _merged(self, parts: list[tuple[list[Path], list[tuple[Path, str]], list[Path]]]
                ) -> DenoiseSummary:
        """The processes' summaries as one, in the order of the inputs."""
        place = self.positions.get
        merged = DenoiseSummary()
        for written, skipped, existing in parts:
            merged.written += written
            merged.skipped += skipped
            merged.existing += existing
        merged.skipped.sort(key=lambda item: place(item[0], 0))
        merged.existing.sort(key=lambda source: place(source, 0))
        return merged


def _check_continuable(out_dir: Path, marker: dict | None) -> None:
    """--skip-existing continues a folder an earlier denoise run wrote (or an empty or new
    one); a non-empty folder no usdenoise run wrote, or another command's, is refused."""
    if not out_dir.is_dir():
        return
    if marker is None:
        if any(out_dir.iterdir()):
            raise UsdenoiseError(
                f"--out {out_dir}: --skip-existing continues a folder written by `usdenoise "
                f"denoise`, but this one has no {MARKER}; choose a new folder or use --overwrite")
    elif marker.get("command") != "denoise":
        raise UsdenoiseError(
            f"--out {out_dir}: holds the output of `usdenoise {marker.get('command', '?')}`, "
            "not of denoise; --skip-existing only continues a denoise run")


def _kept_files(out_dir: Path, marker: dict | None) -> list[str]:
    """The files an earlier run listed in the marker that are still there."""
    kept = []
    for name in (marker or {}).get("files", []):
        try:
            if isinstance(name, str) and safe_child(out_dir, name).is_file():
                kept.append(name)
        except UsdenoiseError:  # a name that would leave the folder: not ours to list
            continue
    return kept


def _write_marker(out_dir: Path, names: list[str]) -> None:
    """The folder's marker (`core.files.write_marker`, as `staged_dir` writes it) listing
    `names` and their folders."""
    write_marker(out_dir, command="denoise", files=names,
                 folders={str(Path(n).parent) for n in names} - {"."})


def _restore_marker(out_dir: Path, marker: dict | None, *, remove_root: bool) -> None:
    """Put the folder's marker back as it was before this run (none: remove it)."""
    if marker is None:
        (out_dir / MARKER).unlink(missing_ok=True)
    else:
        write_text_atomic(out_dir / MARKER, json.dumps(marker, indent=2) + "\n")
    _remove_outputs([], out_dir, remove_root=remove_root)


def _check_unique_targets(shares: list[list[str]]) -> None:
    seen: set[str] = set()
    for name in (n for names in shares for n in names):
        if name in seen:
            raise UsdenoiseError(f"two inputs would both be written to {name}")
        seen.add(name)


def _remove_outputs(paths: list[Path], out_dir: Path, *, remove_root: bool) -> None:
    """Delete the files this run wrote and the folders that became empty by it."""
    folders: set[Path] = set()
    for path in paths:
        path.unlink(missing_ok=True)
        folders.update(p for p in path.parents if out_dir in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if remove_root and out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()


def _run_jobs(jobs, summary, denoiser, method, params, workers, strict, dicom_as,
              worker_threads=1, *, show: bool = True) -> None:
    """Run the jobs; the progress bar counts frames (a cine DICOM is many). `show`: False
    hides the bar (the other processes of a torchrun launch; rank 0 shows its own)."""
    with make_progress(**({} if show else {"enabled": False})) as progress:
        task = progress.add_task("denoise (frames)", total=sum(n for *_, n in jobs),
                                 status=method)
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(
                max_workers=min(workers, os.cpu_count() or 1, len(jobs)),
                initializer=init_worker, initargs=(method, params, worker_threads),
            ) as pool:
                futures = [(s, n, pool.submit(_denoise_one, s, t, dicom_as)) for s, t, n in jobs]
                done = 0
                try:
                    for source, frames, future in futures:
                        _collect(source, future.result, summary, strict)
                        done += 1
                        progress.advance(task, frames)
                except BaseException:
                    # stop the rest; files from jobs that were already running still count
                    # as written by this run, so a strict stop can remove them
                    for *_, future in futures[done + 1:]:
                        future.cancel()
                    for *_, future in futures[done + 1:]:
                        if not future.cancelled():
                            try:
                                summary.written += future.result()
                            except BaseException:  # already stopping on an earlier error
                                pass
                    raise
        else:
            handled = 0
            for source, target, frames in jobs:
                _collect(source, lambda s=source, t=target: _denoise_one(
                    s, t, dicom_as, denoiser, on_frame=lambda: progress.advance(task)),
                    summary, strict)
                handled += frames  # a failed file still counts all its frames as handled
                progress.update(task, completed=handled)


def _collect(source: Path, run, summary: DenoiseSummary, strict: bool) -> bool:
    try:
        summary.written += run()
    except UsdenoiseError as exc:
        if strict:
            raise
        warnings.warn(f"skipped {exc}", stacklevel=2)
        summary.skipped.append((source, str(exc)))
        return False
    return True
