"""`evaluate` streams: each image is read (through a DataLoader) just before it is measured,
so memory does not grow with the number of images (figures: benchmarks/evaluate_rss.py)."""

from __future__ import annotations

from pathlib import Path

import usdenoise.denoise.benchmark as benchmark
from usdenoise.data import load_dataset
from usdenoise.denoise.benchmark import EvaluationSettings, evaluate, parse_methods


def settings(**kw) -> EvaluationSettings:
    base = {"data": "phantom:6", "methods": parse_methods("lee"), "noises": ["rayleigh:0.5"],
            "size": 24, "split": "all", "limit": 4, "examples": 1, "strengths": [1.0]}
    return EvaluationSettings(**{**base, **kw})


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds_per_image"} for r in records]


def test_each_image_is_read_just_before_it_is_measured(tmp_path: Path, monkeypatch) -> None:
    events: list[tuple[str, str]] = []

    class Logged:
        def __init__(self, dataset):
            self.dataset = dataset

        def __len__(self):
            return len(self.dataset)

        def __getattr__(self, name):
            return getattr(self.dataset, name)

        def __getitem__(self, index):
            sample = self.dataset[index]
            events.append(("read", sample["id"]))
            return sample

    real_context = benchmark._context

    def context(x, sample, *args):
        events.append(("measure", sample["id"]))
        return real_context(x, sample, *args)

    monkeypatch.setattr(benchmark, "load_dataset", lambda *a, **k: Logged(load_dataset(*a, **k)))
    monkeypatch.setattr(benchmark, "_context", context)
    evaluate(settings(noises=["rayleigh:0.25", "rayleigh:0.5"]), tmp_path / "ev")
    ids = [f"phantom_{i:05d}" for i in range(4)]
    # read one, measure it at both levels, then the next: never two images read ahead
    assert events == [e for i in ids for e in (("read", i), ("measure", i), ("measure", i))]


def test_loading_processes_give_the_same_records(tmp_path: Path) -> None:
    here = evaluate(settings(), tmp_path / "zero")
    loaded = evaluate(settings(workers=1), tmp_path / "one")
    assert without_timing(here) == without_timing(loaded)
    assert ((tmp_path / "zero" / "per_image.csv").read_text()
            == (tmp_path / "one" / "per_image.csv").read_text())
