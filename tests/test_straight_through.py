"""The straight-through policy (decisions, card, extract lines) and its fit on held-out items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from extractor.certify import Certificate
from extractor.correctness import FEATURES, CorrectnessModel
from extractor.document import (
    RECEIPT_SCHEMA,
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    Word,
)
from extractor.model.batch import result_line
from extractor.model.card import ModelCard, model_version
from extractor.straight_through import Items, StraightThrough
from training.straight_through import (
    ItemTable,
    cross_fitted_scores,
    fit_straight_through,
    leave_one_out_memory,
    save_with,
)

FIELDS = RECEIPT_SCHEMA.field_names


def identity_model() -> CorrectnessModel:
    """P(correct) = the calibrated confidence (weight 1 on its logit, nothing else)."""
    n = len(FEATURES)
    return CorrectnessModel(FIELDS, [1.0] + [0.0] * (n - 1 + len(FIELDS)), 0.0, [0.0] * n,
                            [1.0] * n)


def policy(thresholds: dict[str, float | None]) -> StraightThrough:
    certs = {f: Certificate(f, t, 0.99, 0.95, 400, 300 if t else 0, 0,
                            1.0 if t else None, 0.009 if t else None,
                            "" if t else "too few items: 12")
             for f, t in thresholds.items()}
    return StraightThrough(identity_model(), certs, {f: Items([0.9], [True]) for f in FIELDS})


def page_and_result(version: str = "v1") -> tuple[Document, ExtractionResult]:
    doc = Document("d1", [Word("KEDAI", (0, 0, 10, 10)), Word("9.50", (0, 20, 10, 30))], 100, 100)
    res = ExtractionResult("d1", version, {
        "company": FieldResult("company", [Candidate("KEDAI", .999, [0])], .999),
        "date": FieldResult("date", [], .97),
        "address": FieldResult("address", [], .999),
        "total": FieldResult("total", [Candidate("9.50", .5, [1])], .5)})
    return doc, res


def test_decide_says_why_per_field() -> None:
    st = policy({"company": 0.99, "date": 0.99, "address": None, "total": 0.9})
    doc, res = page_and_result()
    d = st.decide(doc, res, RECEIPT_SCHEMA)
    assert d["company"].accept and d["company"].p_correct == pytest.approx(0.999)
    assert "certified for 0.99 precision" in d["company"].reason
    assert not d["date"].accept and "0.9700 < 0.9900" in d["date"].reason
    assert not d["address"].accept and d["address"].reason.startswith("not certified: too few")
    assert not d["total"].accept
    assert all(x.model_version == "v1" and x.threshold == st.certificates[f].threshold
               for f, x in d.items())
    revoked = st.decide(doc, res, RECEIPT_SCHEMA, revoked={"company"})["company"]
    assert not revoked.accept and "audit" in revoked.reason


def test_round_trip_and_card(tmp_path: Path) -> None:
    st = policy({"company": 0.99, "date": None, "address": None, "total": 0.9})
    again = StraightThrough.from_dict(json.loads(json.dumps(st.export())))
    assert again.export() == st.export()
    with pytest.raises(ValueError, match="not a valid straight-through"):
        StraightThrough.from_dict({"model": st.model.export()})
    card = ModelCard(RECEIPT_SCHEMA, straight_through=st)
    assert ModelCard.from_dict(card.export()).straight_through.export() == st.export()
    # The items are evidence, not a decision: they do not enter the version hash.
    assert "items" not in card.decision_key()[-1] and "certificates" in card.decision_key()[-1]


def test_extract_line_carries_the_decisions(tiny_dir: Path) -> None:
    from extractor.model.predictor import load_predictor

    plain = load_predictor(tiny_dir, "cpu")
    doc, _ = page_and_result()
    res = plain.predict([doc])[0]
    line = result_line(res, doc, "provided", plain.accept_decisions(doc, res))
    assert set(line["auto_accept"]) == set(FIELDS)
    assert not any(v["accept"] for v in line["auto_accept"].values())
    assert "kvloop thresholds fit" in line["auto_accept"]["total"]["reason"]
    out, version = save_with(tiny_dir, policy({f: 0.0001 for f in FIELDS}), tiny_dir.parent / "st")
    assert version != plain.version and version == model_version(out)
    certified = load_predictor(out, "cpu")
    res = certified.predict([doc])[0]
    decisions = certified.accept_decisions(doc, res)
    assert all(d.accept and d.model_version == version for d in decisions.values())
    foreign = ExtractionResult(doc.id, "other", res.fields)
    assert not any(d.accept for d in certified.accept_decisions(doc, foreign).values())
    assert "auto_accept" not in result_line(res, doc, "provided")


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    from extractor.model.zoo import build_model

    d = tmp_path / "tiny"
    build_model("tiny", seed=0).save_pretrained(d)
    return d


def synthetic_table(n_pages: int, seed: int = 0, mean: float = 3.0) -> ItemTable:
    """Items whose correctness follows the confidence's logit, 4 fields per page."""
    rng = np.random.default_rng(seed)
    t = ItemTable()
    for p in range(n_pages):
        for f in FIELDS:
            z = rng.normal(mean, 2.5)
            x = [z] + list(rng.normal(size=len(FEATURES) - 1))
            t.add(x, f, bool(rng.random() < 1 / (1 + np.exp(-z))), f"page{p}")
    return t


def test_cross_fitted_scores_are_held_out() -> None:
    t = synthetic_table(60)
    before = cross_fitted_scores(t, FIELDS)
    t.correct[0] = not t.correct[0]  # an item's own label must not move its own score
    after = cross_fitted_scores(t, FIELDS)
    assert before[0] == pytest.approx(after[0])
    assert not np.allclose(before, after)  # but moves the other folds' scores


def test_fit_certifies_with_enough_items_and_says_why_not_otherwise() -> None:
    st = fit_straight_through(synthetic_table(1200), FIELDS, target=0.99)
    assert all(len(st.items[f].scores) == 1200 for f in FIELDS)
    assert st.sources["total"] == {"calibration": 1200}
    certified = [c for c in st.certificates.values() if c.certified]
    assert certified, {f: c.reason for f, c in st.certificates.items()}
    for c in certified:
        assert c.bound <= 0.01 and c.accepted >= 299
    small = fit_straight_through(synthetic_table(50), FIELDS, target=0.99)
    assert not any(c.certified for c in small.certificates.values())
    assert "too few items: 50" in small.certificates["date"].reason
    with pytest.raises(ValueError, match="no calibration items"):
        fit_straight_through(ItemTable(), FIELDS)


def test_leave_one_out_memory_never_holds_the_page_itself() -> None:
    a = Document("a", [Word("KEDAI", (0, 0, 1, 1))], 10, 10, gold={"company": "KEDAI"})
    b = Document("b", [Word("KEDAI", (0, 0, 1, 1))], 10, 10, gold={"company": "KEDAI"})
    c = Document("c", [Word("TOKO", (0, 0, 1, 1))], 10, 10, gold={"company": "TOKO"})
    mem = leave_one_out_memory([a, b, c], FIELDS)
    assert mem["a"].vendor_of(a) == "kedai" and mem["c"].vendor_of(c) is None


def test_pooled_scope_certifies_all_fields_together() -> None:
    table = synthetic_table(150, mean=6.0)  # 150 items per field: too few for 99% per field
    per_field = fit_straight_through(table, FIELDS, target=0.99)
    assert not any(c.certified for c in per_field.certificates.values())
    pooled = fit_straight_through(table, FIELDS, target=0.99, scope="pooled")
    certs = list(pooled.certificates.values())
    assert all(c is certs[0] for c in certs) and certs[0].items == 600
    assert certs[0].certified, certs[0].reason
    again = StraightThrough.from_dict(json.loads(json.dumps(pooled.export())))
    assert again.scope == "pooled" and again.certificates["date"].threshold == certs[0].threshold
    with pytest.raises(ValueError, match="scope"):
        StraightThrough(identity_model(), {}, scope="global")


def test_fit_and_eval_commands_on_sroie(tiny_dir: Path, sroie_dir: Path, tmp_path: Path,
                                        capsys) -> None:
    from kvloop.cli import main

    out = tmp_path / "fitted"
    assert main(["thresholds", "fit", "--model", str(tiny_dir), "--data", str(sroie_dir),
                 "--ocr", "provided", "--limit", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "company: in review (too few items: 4" in printed
    st = ModelCard.load(out).straight_through
    assert st.sources["date"] == {"calibration": 4}
    assert st.scores_of == [model_version(tiny_dir)]
    report = tmp_path / "report"
    assert main(["eval", "--model", str(out), "--data", str(sroie_dir), "--limit", "3",
                 "--n-boot", "10", "--gallery", "0", "--out", str(report)]) == 0
    assert "certified auto-accept: 0.0% of fields" in capsys.readouterr().out
    run = json.loads((report / "report.json").read_text())["runs"][0]
    section = run["metrics"]["straight_through"]
    assert section["n_docs"] == 3 and section["minutes_per_100"] == 0.0
    assert run["metrics"]["calibration"]["overall"]["n"] == 12  # the extractor's, kept
    assert "Straight-through processing" in (report / "report.html").read_text()


def test_weights_saved_again_lose_the_certificates(tiny_dir: Path) -> None:
    from extractor.model.ensemble import KVEnsemble

    out, _ = save_with(tiny_dir, policy({f: 0.5 for f in FIELDS}), tiny_dir.parent / "st")
    model, card = KVEnsemble.from_pretrained(out)
    assert card.straight_through is not None
    model.save_pretrained(tiny_dir.parent / "resaved", card)  # e.g. a trainer's checkpoint
    assert ModelCard.load(tiny_dir.parent / "resaved").straight_through is None
