"""The public surface the README and docs document: names and old import paths keep working."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

# (module, names) the README and docs/ show; old paths are short re-export modules
DOCUMENTED = [
    ("usdenoise.io", ["read_image", "read_frames", "read_mask", "image_info", "write_image",
                      "write_mask", "write_dicom", "IMAGE_SUFFIXES"]),
    ("usdenoise.noise", ["add_speckle", "make_noise", "Mixture", "Physics", "NOISES"]),
    ("usdenoise.denoise", ["make_denoiser", "DENOISERS", "Denoiser", "parse_params"]),
    ("usdenoise.metrics", ["psnr", "ssim", "ms_ssim", "enl", "cnr", "gcnr", "ssi", "epi",
                           "METRICS"]),
    ("usdenoise.metrics.segmentation", ["dice_per_class", "iou_per_class", "image_metrics"]),
    ("usdenoise.metrics.geometry", ["head_circumference", "fit_head_ellipse",
                                    "ellipse_perimeter"]),
    ("usdenoise.metrics.stats", ["bootstrap_ci", "paired_comparison"]),
    ("usdenoise.models", ["build_network", "ARCHITECTURES", "count_parameters"]),
    ("usdenoise.models.segmenters", ["SEGMENTERS", "build_segmenter"]),
    ("usdenoise.models.tiling", ["denoise_tiled"]),
    ("usdenoise.checkpoint", ["save_model", "load_model", "read_sidecar", "load_segmenter"]),
    ("usdenoise.data", ["load_dataset", "DATASETS", "collate_samples"]),
    ("usdenoise.data.splits", ["split_by_subject", "save_splits", "load_splits"]),
    ("usdenoise.losses", ["parse_loss", "LOSSES"]),
    ("usdenoise.segmentation", ["evaluate_segmenter", "SegmentEvaluation", "InputPipeline",
                                "predict"]),
    ("usdenoise.segmentation.class_mapping", ["map_classes"]),
    ("usdenoise.training", ["fit", "TrainConfig", "load_config"]),
    ("usdenoise.training.tasks", ["TASKS"]),
    ("usdenoise.denoise.benchmark", ["evaluate", "EvaluationSettings", "parse_methods"]),
    ("usdenoise.core.params", ["Param", "STRENGTH", "blend"]),
    ("usdenoise.core.errors", ["UsdenoiseError", "MissingExtraError"]),
    # old paths, kept as re-export modules
    ("usdenoise.speckle", ["add_speckle", "make_noise", "Mixture", "Physics"]),
    ("usdenoise.denoisers", ["make_denoiser", "DENOISERS"]),
    ("usdenoise.config", ["TrainConfig", "load_config"]),
    ("usdenoise.train", ["fit"]),
    ("usdenoise.segment", ["evaluate_segmenter", "head_circumference", "dice_per_class"]),
    ("usdenoise.evaluate", ["evaluate", "EvaluationSettings"]),
    ("usdenoise.class_mapping", ["map_classes"]),
    ("usdenoise.classic", ["CLASSIC", "Lee", "BM3D", "SRAD"]),
]


@pytest.mark.parametrize(("module", "names"), DOCUMENTED, ids=[m for m, _ in DOCUMENTED])
def test_documented_names_import(module: str, names: list[str]) -> None:
    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"


def test_old_paths_are_the_same_objects() -> None:
    from usdenoise.denoise import make_denoiser
    from usdenoise.denoisers import make_denoiser as old
    from usdenoise.noise import add_speckle
    from usdenoise.speckle import add_speckle as old_speckle
    from usdenoise.train import fit as old_fit
    from usdenoise.training import fit

    assert old is make_denoiser and old_speckle is add_speckle and old_fit is fit


def test_registries_are_complete() -> None:
    from usdenoise.denoise import DENOISERS
    from usdenoise.training.tasks import TASKS

    assert {"default", "network", "noisy", "bm3d", "lee", "srad", "obnlm"} <= set(DENOISERS)
    assert {"denoise", "segment"} <= set(TASKS)


def test_python_m_usdenoise_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "usdenoise", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "Usage" in proc.stdout


def test_usdenoise_evaluate_stays_callable_after_the_old_module_is_imported() -> None:
    import numpy as np

    import usdenoise
    import usdenoise.evaluate  # noqa: F401  (the old-path module)

    clean = np.full((32, 32), 0.5, np.float32)
    scores = usdenoise.evaluate(clean, clean)
    assert scores["psnr"] == float("inf") or scores["psnr"] > 60
