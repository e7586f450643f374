"""Calibrators of the top-1 confidence (temperature+bias, isotonic) and their choice."""

from __future__ import annotations

import doctest
import random

import pytest

import extractor.model.calibrate as calibrate_mod
from extractor.model.calibrate import Calibrator, fit_calibrator
from extractor.scoring import expected_calibration_error


def test_doctests() -> None:
    res = doctest.testmod(calibrate_mod)
    assert res.attempted > 0 and res.failed == 0


def overconfident_scores() -> tuple[list[float], list[bool]]:
    """A model whose logits are three times too large (temperature 3 fixes it)."""
    rng = random.Random(1)
    true_p = [rng.uniform(0.3, 0.95) for _ in range(2000)]
    correct = [rng.random() < p for p in true_p]
    return [1 / (1 + ((1 - p) / p) ** 3) for p in true_p], correct


def test_fit_reduces_ece_of_overconfident_scores() -> None:
    conf, correct = overconfident_scores()
    cal = fit_calibrator(conf, correct)
    after = [cal(c) for c in conf]
    assert expected_calibration_error(after, correct) < 0.5 * expected_calibration_error(
        conf, correct)
    assert cal.temperature == pytest.approx(3.0, rel=0.25)


def test_degenerate_data_gives_identity() -> None:
    assert fit_calibrator([0.9] * 20, [True] * 20) == Calibrator(n=20)
    assert fit_calibrator([0.9] * 3, [True, False, True]).temperature == 1.0
    with pytest.raises(ValueError):
        fit_calibrator([0.5], [True, False])


def test_calibrator_round_trip_and_monotone() -> None:
    cal = Calibrator(2.0, -0.3, 50)
    assert Calibrator.from_dict(cal.export()) == cal
    assert cal(0.2) < cal(0.5) < cal(0.9)
    assert Calibrator()(0.73) == pytest.approx(0.73)


def clustered_scores(n: int, seed: int) -> tuple[list[float], list[bool]]:
    """Scores in clusters whose accuracy is not a sigmoid of the score (as merged OCR passes
    give: a value read by k of 5 passes scores about k/5)."""
    rng = random.Random(seed)
    accuracy = {0.2: 0.05, 0.4: 0.6, 0.6: 0.3, 0.8: 0.9, 1.0: 0.7}
    conf, correct = [], []
    for _ in range(n):
        level = rng.choice(list(accuracy))
        conf.append(min(1.0, level + rng.uniform(-0.03, 0.0)))
        correct.append(rng.random() < accuracy[level])
    return conf, correct


def test_isotonic_is_chosen_where_no_temperature_fits_and_generalises() -> None:
    conf, correct = clustered_scores(600, seed=2)
    cal = fit_calibrator(conf, correct)
    assert cal.method == "isotonic"
    assert cal.cv_ece["isotonic"] < cal.cv_ece["temperature+bias"] - 0.01
    held_conf, held_correct = clustered_scores(600, seed=3)
    smooth = fit_calibrator(conf, correct, methods=("temperature+bias",))
    iso_ece = expected_calibration_error([cal(c) for c in held_conf], held_correct)
    assert iso_ece < expected_calibration_error([smooth(c) for c in held_conf], held_correct)
    assert iso_ece < 0.05
    assert Calibrator.from_dict(cal.export()) == cal
    assert all(0.0 < cal(c) < 1.0 for c in (0.0, 0.5, 1.0))  # kept off 0 and 1


def test_temperature_is_kept_unless_isotonic_is_clearly_better() -> None:
    conf, correct = overconfident_scores()
    cal = fit_calibrator(conf, correct)
    assert cal.method == "temperature+bias" and set(cal.cv_ece) == {"temperature+bias",
                                                                    "isotonic"}
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit_calibrator(conf, correct, methods=("histogram",))
    with pytest.raises(ValueError, match="unknown calibration method"):
        Calibrator.from_dict({"method": "histogram"})


def test_upper_fields_are_the_text_fields_right_more_often_in_capitals() -> None:
    from extractor.document import RECEIPT_SCHEMA, Candidate, ExtractionResult, FieldResult
    from training.decisions import upper_fields

    def result(**values: str) -> ExtractionResult:
        return ExtractionResult("d", "v", {f: FieldResult(f, [Candidate(v, 0.9)], 0.9)
                                           for f, v in values.items()})

    golds = [{"company": "ABC SDN BHD", "address": "NO. 3, JALAN X", "date": "1/2/2018",
              "total": "9.00"},
             {"company": "Kedai Runcit", "address": "NO. 5, JALAN Y", "date": "3/4/2018",
              "total": "10.00"}]
    results = [result(company="Abc Sdn Bhd", address="NO. 3, JALAN X", date="1/2/2018",
                      total="9.00"),
               result(company="Kedai Runcit", address="No. 5, Jalan Y", date="3/4/2018",
                      total="10.00")]
    # company: one right either way (a tie keeps the case as read); address: 1 -> 2
    assert upper_fields(RECEIPT_SCHEMA, golds, results) == ("address",)
    assert upper_fields(RECEIPT_SCHEMA, golds[:1], results[:1]) == ("company",)
    assert upper_fields(RECEIPT_SCHEMA, [], []) == ()
