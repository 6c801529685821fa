"""`usdenoise denoise`: denoise files and folders, keeping names, formats and bit depth."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from usdenoise.errors import UsdenoiseError
from usdenoise.progress import make_progress


@dataclass
class DenoiseSummary:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def collect_inputs(inputs: list[Path], *, recursive: bool) -> list[tuple[Path, Path]]:
    """(file, path relative to the output folder) for every supported image in the inputs."""
    from usdenoise.io import IMAGE_SUFFIXES

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


def output_path(relative: Path, out_dir: Path, *, dicom_as: str) -> Path:
    if _suffix(relative) in {".dcm", ".dicom", ""} and dicom_as == "png":
        return out_dir / relative.with_suffix(".png")
    return out_dir / relative


# one denoiser per worker process, built once
_WORKER_DENOISER: Any = None


def _init_worker(method: str, params: dict[str, Any]) -> None:
    global _WORKER_DENOISER
    from usdenoise.denoisers import make_denoiser

    torch.set_num_threads(1)
    _WORKER_DENOISER = make_denoiser(method, **params)


def _denoise_one(source: Path, target: Path, dicom_as: str, denoiser: Any = None) -> list[Path]:
    """Denoise every frame of one file and write it; returns the files written."""
    from usdenoise.io import image_info, read_frames, write_dicom, write_image

    denoiser = denoiser or _WORKER_DENOISER
    info = image_info(source)
    frames = read_frames(source)  # [F, 1, H, W]
    outputs = torch.cat([denoiser.denoise(frame[None]) for frame in frames])
    target.parent.mkdir(parents=True, exist_ok=True)
    if info.format == "dicom" and dicom_as == "dicom":
        write_dicom(target, outputs, template=source)
        return [target]
    bit_depth = 16 if (info.bit_depth or 8) > 8 else 8
    if len(outputs) == 1:
        write_image(target, outputs[0], bit_depth=bit_depth)
        return [target]
    written = []
    for index, frame in enumerate(outputs):  # a cine written as PNGs: one file per frame
        path = target.with_name(f"{target.stem}_{index:04d}{target.suffix}")
        write_image(path, frame, bit_depth=bit_depth)
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
) -> DenoiseSummary:
    """Denoise every input image into out_dir; unreadable files are skipped (or stop if strict)."""
    from usdenoise.denoisers import make_denoiser
    from usdenoise.io import image_info

    if dicom_as not in {"dicom", "png"}:
        raise UsdenoiseError(f"--dicom-as {dicom_as!r}: choose dicom or png")
    denoiser = make_denoiser(method, **params)  # unknown method / bad parameter: fail first
    out_dir = Path(out_dir)
    _check_out_dir(inputs, out_dir)
    files = collect_inputs(inputs, recursive=recursive)
    summary = DenoiseSummary()
    jobs: list[tuple[Path, Path]] = []
    for source, relative in files:  # read every header before writing anything
        target = output_path(relative, out_dir, dicom_as=dicom_as)
        try:
            image_info(source)
        except UsdenoiseError as exc:
            if strict:
                raise
            warnings.warn(f"skipped {exc}", stacklevel=2)
            summary.skipped.append((source, str(exc)))
            continue
        if target.resolve() == source.resolve():
            raise UsdenoiseError(f"{target}: would overwrite its own input")
        if target.exists() and not overwrite:
            raise UsdenoiseError(f"{target}: output exists (use --overwrite)")
        jobs.append((source, target))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsdenoiseError(f"{out_dir}: cannot create folder ({exc.strerror})") from None
    try:
        _run_jobs(jobs, summary, denoiser, method, params, workers, strict, dicom_as)
    except BaseException:
        if strict:  # stopping: leave no output from this run behind
            for path in summary.written:
                path.unlink(missing_ok=True)
        raise
    return summary


def _run_jobs(jobs, summary, denoiser, method, params, workers, strict, dicom_as) -> None:
    with make_progress() as progress:
        task = progress.add_task("denoise", total=len(jobs), status=method)
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(
                max_workers=min(workers, os.cpu_count() or 1, len(jobs)),
                initializer=_init_worker, initargs=(method, params),
            ) as pool:
                futures = [(s, pool.submit(_denoise_one, s, t, dicom_as)) for s, t in jobs]
                for source, future in futures:
                    _collect(source, future.result, summary, strict)
                    progress.advance(task)
        else:
            for source, target in jobs:
                _collect(source, lambda s=source, t=target: _denoise_one(s, t, dicom_as, denoiser),
                         summary, strict)
                progress.advance(task)


def _collect(source: Path, run, summary: DenoiseSummary, strict: bool) -> None:
    try:
        summary.written += run()
    except UsdenoiseError as exc:
        if strict:
            raise
        warnings.warn(f"skipped {exc}", stacklevel=2)
        summary.skipped.append((source, str(exc)))
