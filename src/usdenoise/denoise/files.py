"""`usdenoise denoise`: denoise files and folders, keeping names, formats and bit depth."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.progress import make_progress
from usdenoise.denoise.registry import make_denoiser
from usdenoise.io import IMAGE_SUFFIXES, image_info, read_frames, write_dicom, write_image
from usdenoise.io.metaimage import write_metaimage_like


@dataclass
class DenoiseSummary:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


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
    """

    if dicom_as not in {"dicom", "png"}:
        raise UsdenoiseError(f"--dicom-as {dicom_as!r}: choose dicom or png")
    if workers < 1:
        raise UsdenoiseError(f"--workers {workers}: must be at least 1")
    if threads is not None and threads < 1:
        raise UsdenoiseError(f"--threads {threads}: must be at least 1")
    if threads is not None and workers == 1:
        torch.set_num_threads(int(threads))
    denoiser = make_denoiser(method, **params)  # unknown method / bad parameter: fail first
    out_dir = Path(out_dir)
    _check_out_dir(inputs, out_dir)
    files = collect_inputs(inputs, recursive=recursive)
    summary = DenoiseSummary()

    def skip(source: Path, message: str) -> None:
        if strict:
            raise UsdenoiseError(message)
        warnings.warn(f"skipped {message}", stacklevel=3)
        summary.skipped.append((source, message))

    jobs: list[tuple[Path, Path, int]] = []
    planned: dict[Path, Path] = {}  # output file -> its input, to catch two inputs, one output
    for source, relative in files:
        try:
            info = image_info(source)
        except UsdenoiseError as exc:
            skip(source, str(exc))
            continue
        smallest = min(info.height or 0, info.width or 0)
        if smallest < getattr(denoiser, "min_size", 1):
            skip(source, f"{source}: image {info.height}x{info.width} is smaller than the "
                         f"{denoiser.min_size}-pixel minimum of {method} with these parameters")
            continue
        target = output_path(relative, out_dir, dicom_as=dicom_as, is_dicom=_is_dicom(info))
        one_file = _one_file(info, target, dicom_as)
        for path in frame_paths(target, 1 if one_file else (info.frames or 1)):
            if path.resolve() == source.resolve():
                raise UsdenoiseError(f"{path}: would overwrite its own input")
            if path.resolve() in planned:
                raise UsdenoiseError(
                    f"{source} and {planned[path.resolve()]} would both be written to {path}"
                )
            if path.exists() and not overwrite:
                raise UsdenoiseError(f"{path}: output exists (use --overwrite)")
            planned[path.resolve()] = source
        jobs.append((source, target, max(1, info.frames or 1)))
    if not jobs:
        reason = f" ({summary.skipped[0][1]})" if summary.skipped else ""
        raise UsdenoiseError(f"no image to denoise: every input was skipped{reason}")
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsdenoiseError(f"{out_dir}: cannot create folder ({exc.strerror})") from None
    try:
        _run_jobs(jobs, summary, denoiser, method, params, workers, strict, dicom_as,
                  threads or 1)
    except BaseException:
        if strict:  # stopping: leave no output from this run behind
            _remove_outputs(summary.written, out_dir, remove_root=created)
        raise
    if not summary.written:
        _remove_outputs([], out_dir, remove_root=created)
        first = summary.skipped[0][1] if summary.skipped else "no output"
        raise UsdenoiseError(f"nothing denoised: all {len(summary.skipped)} input file(s) "
                             f"failed (first: {first})")
    return summary


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
              worker_threads=1) -> None:
    """Run the jobs; the progress bar counts frames (a cine DICOM is many)."""
    with make_progress() as progress:
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
