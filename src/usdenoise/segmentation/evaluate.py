"""`usdenoise segment evaluate`: predict and measure a segmenter on a data set.

Every image is loaded at its own size, resized to the size the model was trained at, put
through the same input processing (`pipeline.InputPipeline`), predicted by argmax, and the
class map brought back to the image's size by nearest neighbour (masks are never
interpolated). Per image and class: Dice, IoU, HD95 (MONAI, 95th percentile of the
symmetric surface distances; mm where the pixel size is known), area bias (predicted area /
true area - 1; positive means regions drawn too large) and the head circumference error
(`metrics.geometry`). The empty-class rules are those of `metrics.segmentation`.

A model evaluated on a data set with other class names (HC18's head on PSFHS's fetal head)
is measured on the classes matched by name (`class_mapping`); data classes without a
counterpart count as background, and the notes say so. With `test` (`--test DATA2`) the
images are those of DATA2 instead of DATA, all of them unless `split` says otherwise (a model
trained on DATA measured on other data, as `usdenoise evaluate --test`); the results name
both (`data` the test data, `train_data` DATA).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from usdenoise.checkpoint import load_segmenter, resolve_segmenter, segmenter_input_size
from usdenoise.core.devices import resolve_auto
from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.files import input_folders, staged_dir, write_text_atomic
from usdenoise.core.progress import make_progress
from usdenoise.data import load_dataset
from usdenoise.data.splits import load_splits, split_dataset
from usdenoise.data.transforms import resize_image
from usdenoise.io import write_image, write_mask
from usdenoise.metrics.geometry import head_classes
from usdenoise.metrics.segmentation import image_metrics, nanmean
from usdenoise.reporting.tables import records_to_csv, records_to_json
from usdenoise.segmentation.class_mapping import ClassMapping, map_classes
from usdenoise.segmentation.pipeline import InputPipeline, check_sample
from usdenoise.segmentation.postprocess import POSTPROCESS, postprocess_mask
from usdenoise.segmentation.predict import overlay, predict


@dataclass
class SegmentEvaluation:
    """What `evaluate_segmenter` does: model, data, input processing, which images."""

    data: str
    model: str
    noise: str | None = None
    denoise: str | None = None
    denoise_params: dict[str, Any] = field(default_factory=dict)
    #: train, val, test or all; None: test, or all on a `test` data set other than `data`
    split: str | None = None
    size: int | None = None  # load images at this size (None: their own)
    limit: int | None = None
    seed: int | None = None  # speckle and split seed; None: the run's
    examples: int = 4  # coloured overlays written
    device: str = "auto"
    classes: str | None = None  # model classes to evaluate ("head,..."); None/"auto": by name
    postprocess: str = "none"  # none, largest or ellipse (usdenoise.segmentation.postprocess)
    #: evaluate on this data set instead of `data` (a model trained on `data` measured on
    #: other data, e.g. HC18 -> PSFHS); its images are all used unless `split` says otherwise
    test: str | None = None

    @property
    def spec(self) -> str:
        """The data set whose images are evaluated."""
        return self.test or self.data

    def resolved_split(self) -> str:
        if self.split is not None:
            return self.split
        return "all" if self.test is not None and self.test != self.data else "test"


SEGMENT_COLUMNS = ("dice", "iou", "hd95", "area_bias", "hc_abs_error_mm", "n_missing_hc")


def _records_markdown(records: list[dict[str, Any]], notes: list[str]) -> str:
    lines = ["# usdenoise segment evaluate", ""]
    for record in records:
        trained = (f" (models trained on `{record['train_data']}`)"
                   if record.get("train_data") else "")
        lines.append(f"- model `{record['model']}` ({record['arch']}), data "
                     f"`{record['data']}`{trained}, split {record['split']}, "
                     f"{record['n_images']} images; HD95 in {record['hd95_unit']}")
    lines += ["", "| method | noise | " + " | ".join(SEGMENT_COLUMNS) + " |",
              "|" + "---|" * (len(SEGMENT_COLUMNS) + 2)]
    for r in records:
        cells = []
        for c in SEGMENT_COLUMNS:
            v = r.get(c)
            cells.append("–" if v is None else (str(v) if isinstance(v, int) else f"{v:.4g}"))
        noise = r["noise"] or "none"
        lines.append(f"| {r['method']} | {noise} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"Note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _split_indices(settings: SegmentEvaluation, dataset: Any, run: Path,
                   sidecar: dict[str, Any], seed: int) -> list[int]:
    if settings.split == "all":
        indices = list(range(len(dataset)))
    else:
        trained_on = sidecar.get("meta", {}).get("config", {}).get("data")
        splits_path = run / "splits.json"
        if trained_on == settings.spec and splits_path.is_file():
            splits = load_splits(splits_path, dataset=dataset)
        else:
            splits = split_dataset(dataset, seed=seed)
        assert settings.split is not None  # evaluate_segmenter resolved it
        indices = list(splits[settings.split])
        if not indices:
            raise UsdenoiseError(f"{settings.spec}: the {settings.split} split is empty "
                                 "(too few subjects); use --split all")
    return indices[: settings.limit] if settings.limit is not None else indices


def _class_mapping(settings: SegmentEvaluation, sidecar: dict[str, Any],
                   data_names: tuple[str, ...]) -> ClassMapping:
    """The model's classes matched to the data's by name (`class_mapping`)."""
    names = tuple(str(n) for n in sidecar.get("meta", {}).get("class_names") or ())
    n_model = int(sidecar["config"].get("num_classes", len(names) or 2))
    if not names:  # an unnamed model: by index when the counts agree, else HC18's names
        names = data_names if len(data_names) == n_model else ("background", "head")
    if len(names) != n_model:
        raise UsdenoiseError(f"--segmenter {settings.model}: checkpoint names {len(names)} classes "
                             f"({', '.join(names)}) but predicts {n_model}")
    return map_classes(names, data_names, classes=settings.classes, data_label=settings.spec,
                       model_label=str(settings.model))


def evaluate_segmenter(settings: SegmentEvaluation, out_dir: str | Path, *,
                       overwrite: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Predict and measure; writes results.json/csv/md, per_image.csv, masks/<id>.png (class
    maps at each image's own size) and overlays/<id>.png for the first `examples` images.
    Returns (records, notes)."""
    out_dir = Path(out_dir)
    settings = replace(settings, split=settings.resolved_split())
    if settings.split not in ("train", "val", "test", "all"):
        raise UsdenoiseError(f"--split {settings.split!r}: choose train, val, test or all")
    if settings.postprocess not in POSTPROCESS:
        raise UsdenoiseError(f"--postprocess {settings.postprocess!r}: choose "
                             f"{', '.join(POSTPROCESS)}")
    if (out_dir / "results.json").exists() and not overwrite:
        raise UsdenoiseError(f"{out_dir}: results.json already exists (use --overwrite)")
    device = resolve_auto(settings.device)
    model, sidecar = load_segmenter(settings.model, device=device,
                                    denoiser_option="--denoise-model")
    meta = sidecar.get("meta", {})
    run_config = meta.get("config", {})
    model_names = tuple(meta.get("class_names") or ("background", "head"))
    seed = settings.seed if settings.seed is not None else int(run_config.get("seed", 0))
    model_size = segmenter_input_size(sidecar)
    dataset = load_dataset(settings.spec, size=settings.size)
    data_names = tuple(str(n) for n in dataset.class_names)
    mapping = _class_mapping(settings, sidecar, data_names)
    class_names = mapping.names  # what is measured: background + the evaluated classes
    data_label = str(getattr(dataset, "name", settings.spec.split(":")[0]))
    run = resolve_segmenter(settings.model).parent
    indices = _split_indices(settings, dataset, run, sidecar, seed)
    pipeline = InputPipeline(noise=settings.noise, denoise=settings.denoise,
                             params=settings.denoise_params, seed=seed)

    rows: list[dict[str, Any]] = []
    seconds = 0.0
    with staged_dir(out_dir, command="segment evaluate", overwrite=overwrite or None,
                    inputs=input_folders(settings.data) + input_folders(settings.test)
                    ) as staging:
        (staging / "masks").mkdir()
        (staging / "overlays").mkdir()
        with make_progress() as bar:
            task = bar.add_task("segment", total=len(indices), status=pipeline.label)
            for k, index in enumerate(indices):
                sample = dataset[index]
                check_sample(sample, data_names, what="segment evaluate",
                             owner="the model" if mapping.identity else settings.spec)
                image = sample["image"]
                size = tuple(image.shape[-2:])
                x = resize_image(image, model_size) if model_size else image
                x = pipeline(x, index)
                started = time.perf_counter()
                pred = predict(model, x[None], out_size=size)[0]
                pred = postprocess_mask(pred, settings.postprocess,
                                        head=head_classes(model_names))
                seconds += time.perf_counter() - started
                measured, truth = mapping.prediction(pred), mapping.truth(sample["mask"])
                values = image_metrics(measured, truth, class_names=class_names,
                                       spacing_mm=sample.get("spacing_mm"),
                                       hc_mm=sample.get("hc_mm"))
                name = str(sample["id"]).replace("/", "_").replace("\\", "_")
                write_mask(staging / "masks" / f"{name}.png", pred)  # the model's own classes
                if k < settings.examples:
                    shown = resize_image(x, size) if tuple(x.shape[-2:]) != size else x
                    write_image(staging / "overlays" / f"{name}.png",
                                overlay(shown, measured, truth))
                rows.append({"id": sample["id"], "subject": sample.get("subject"),
                             "spacing_mm": sample.get("spacing_mm"), **values})
                bar.advance(task)
        records, notes = _summarise(rows, settings, sidecar, dataset, pipeline, class_names,
                                    seconds)
        if not mapping.identity:
            records[0].update(mapping.describe())
            notes = mapping.notes(data_label) + notes
        per_image = [{"method": pipeline.label, "noise": pipeline.noise_spec,
                      **{k: v for k, v in r.items() if k != "spacing_mm"}} for r in rows]
        write_text_atomic(staging / "results.json", records_to_json(records))
        write_text_atomic(staging / "results.csv", records_to_csv(records))
        write_text_atomic(staging / "results.md", _records_markdown(records, notes))
        write_text_atomic(staging / "per_image.csv", records_to_csv(per_image))
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return records, notes


def _summarise(rows, settings, sidecar, dataset, pipeline, class_names, seconds):
    n = len(rows)
    all_mm = all(r.get("spacing_mm") is not None for r in rows)
    unit = "mm" if all_mm else "px"
    noise_name, _, level_text = (pipeline.noise_spec or "").partition(":")
    try:
        level: float | str | None = float(level_text)
    except ValueError:  # a range ("0.1-0.75") or nothing
        level = level_text or None
    record: dict[str, Any] = {
        "method": pipeline.label, "noise": noise_name or None, "level": level,
        "dataset": getattr(dataset, "name", settings.spec.split(":")[0]),
        "data": settings.spec, "split": settings.split, "n_images": n,
        "model": str(settings.model), "arch": sidecar["arch"],
        "postprocess": settings.postprocess,
        "trained_inputs": sidecar.get("meta", {}).get("inputs"),
    }
    if settings.test is not None:
        record["train_data"] = settings.data
    mean = lambda key: nanmean([r.get(key) for r in rows])  # noqa: E731
    record.update(dice=mean("dice"), iou=mean("iou"),
                  hd95=mean(f"hd95_{unit}"), hd95_unit=unit, area_bias=mean("area_bias"),
                  hc_abs_error_mm=mean("hc_abs_error_mm"), hc_error_mm=mean("hc_error_mm"),
                  n_hc=sum(r["hc_status"] == "ok" for r in rows),
                  n_missing_hc=sum(r["hc_status"] == "no head predicted" for r in rows),
                  n_hc_skipped=sum(r["hc_status"] in ("no pixel size", "no reference head")
                                   for r in rows),
                  n_missing_hd95=sum(bool(r["missing_hd95"]) for r in rows))
    for c in class_names[1:]:
        for key in ("dice", "iou", "area_bias"):
            record[f"{key}_{c}"] = mean(f"{key}_{c}")
        record[f"hd95_{c}"] = mean(f"hd95_{unit}_{c}")
    record["seconds_per_image"] = seconds / n if n else None
    notes = []
    no_spacing = sum(r["hc_status"] == "no pixel size" for r in rows)
    if no_spacing:
        notes.append(f"{no_spacing} of {n} images have no pixel size: head circumference "
                     "skipped for them" + ("" if all_mm else ", HD95 in pixels"))
    if record["n_missing_hc"]:
        notes.append(f"{record['n_missing_hc']} of {n} images: no head predicted, HC error "
                     "missing (counted in n_missing_hc)")
    return [record], notes
