"""Class mapping by name: HC18's head on PSFHS's fetal head, explicit --classes, errors."""

from __future__ import annotations

import pytest
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.segmentation.class_mapping import map_classes, names_match, normalise, parse_classes

HC18 = ("background", "head")
PSFHS = ("background", "pubic_symphysis", "fetal_head")


def test_names_match_case_spaces_underscores_and_head() -> None:
    assert normalise("Fetal Head") == normalise("fetal_head") == "fetalhead"
    assert names_match("head", "fetal head") and names_match("HEAD", "Fetal_Head")
    assert names_match("head", "head") and names_match("Pubic Symphysis", "pubic_symphysis")
    assert not names_match("head", "pubic_symphysis") and not names_match("brain", "head")


def test_hc18_model_on_psfhs_maps_head_and_drops_the_symphysis() -> None:
    m = map_classes(HC18, PSFHS, data_label="psfhs")
    assert not m.identity and m.names == HC18 and m.evaluated == (1,)
    assert m.data_to_compact == (0, 0, 1)
    assert m.mapped == {"fetal_head": "head"} and m.dropped == ("pubic_symphysis",)
    assert m.unmatched == ()
    truth = torch.tensor([[0, 1, 2], [2, 1, 0]])
    assert torch.equal(m.truth(truth), torch.tensor([[0, 0, 1], [1, 0, 0]]))
    pred = torch.tensor([[0, 1, 1]])
    assert torch.equal(m.prediction(pred), pred)
    notes = m.notes("psfhs")
    assert ("psfhs: class 'pubic_symphysis' has no counterpart in the model (background, head): "
            "counted as background") in notes
    assert "psfhs: class 'fetal_head' evaluated as the model's 'head'" in notes
    assert m.describe() == {"class_map": {"fetal_head": "head"},
                            "classes_dropped": ["pubic_symphysis"], "classes_not_evaluated": []}


def test_same_names_are_the_identity() -> None:
    m = map_classes(PSFHS, PSFHS)
    assert m.identity and m.notes("psfhs") == [] and m.names == PSFHS
    mask = torch.tensor([[0, 1, 2]])
    assert m.truth(mask) is mask and m.prediction(mask) is mask


def test_psfhs_model_on_hc18_leaves_the_symphysis_unevaluated() -> None:
    m = map_classes(PSFHS, HC18, data_label="hc18")
    assert m.evaluated == (2,) and m.names == ("background", "fetal_head")
    assert m.unmatched == ("pubic_symphysis",) and m.dropped == ()
    # the symphysis predictions become background; the head becomes compact class 1
    assert torch.equal(m.prediction(torch.tensor([0, 1, 2])), torch.tensor([0, 0, 1]))
    assert torch.equal(m.truth(torch.tensor([0, 1])), torch.tensor([0, 1]))
    assert any("model class 'pubic_symphysis' is not evaluated" in n for n in m.notes("hc18"))


def test_exact_name_wins_over_a_head_match() -> None:
    m = map_classes(("background", "head"), ("background", "fetal head", "head"))
    assert m.data_to_compact == (0, 0, 1) and m.dropped == ("fetal head",)


def test_explicit_classes_restrict_prediction_and_truth() -> None:
    m = map_classes(PSFHS, PSFHS, classes="head")
    assert not m.identity and m.explicit and m.names == ("background", "fetal_head")
    assert torch.equal(m.prediction(torch.tensor([0, 1, 2])), torch.tensor([0, 0, 1]))
    assert torch.equal(m.truth(torch.tensor([0, 1, 2])), torch.tensor([0, 0, 1]))
    assert ("psfhs: class 'pubic_symphysis' not among --classes fetal_head: counted as "
            "background") in m.notes("psfhs")
    assert map_classes(HC18, PSFHS, classes="head").data_to_compact == (0, 0, 1)
    assert map_classes(HC18, HC18, classes=" head ").identity
    assert parse_classes("auto") is None and parse_classes(None) is None
    assert parse_classes("head, brain") == ("head", "brain")


def test_errors_name_the_data_and_both_class_lists() -> None:
    with pytest.raises(UsdenoiseError) as info:
        map_classes(("background", "brain", "csp"), PSFHS, data_label="psfhs:/d",
                    model_label="run")
    message = str(info.value)
    assert message.startswith("psfhs:/d: masks have 3 classes (background, pubic_symphysis, "
                              "fetal_head), but the model run predicts 3 (background, brain, csp)")
    assert "\n" not in message
    with pytest.raises(UsdenoiseError, match=r"--classes brain: not a class of the model run "
                                             r"\(background, head\)"):
        map_classes(HC18, PSFHS, classes="brain", model_label="run")
    with pytest.raises(UsdenoiseError, match=r"--classes pubic_symphysis: hc18 has no such class"):
        map_classes(PSFHS, HC18, classes="pubic_symphysis", data_label="hc18")
