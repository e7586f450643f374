"""The reward model: batched scoring equals per-document scoring, saving round-trips, rerank
reorders by reward and keeps the candidates, and the reranking predictor (``load_predictor(...,
rerank=)``) that ``kvloop extract --rerank`` and the review UI's uploads share; a tiny random
config throughout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from extractor.document import (
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    FieldSpec,
    Schema,
    Word,
)
from extractor.model.card import ModelCard
from extractor.model.ensemble import KVEnsemble
from extractor.model.policy import FieldOutcomes
from extractor.model.predictor import (
    RerankingPredictor,
    check_reranker,
    extractor_confidence,
    load_predictor,
)
from extractor.model.reward import (
    REWARD_CARD_FILE,
    RewardModel,
    build_reward_model,
    is_span,
    reward_version,
)
from extractor.model.zoo import build_model

TEXTS = ["INDAH", "GIFT", "&", "HOME", "DECO", "27,JALAN", "DEDAP", "13", "19/10/2018", "TOTAL",
         "RM", "60.30", "CASH", "100.00", "CHANGE", "39.70"]
FIELDS = ("company", "date", "address", "total")


def _mock_doc(n: int, doc_id: str) -> Document:
    words = [Word(TEXTS[i % len(TEXTS)], (10 * i, 5 * i, 10 * i + 8, 5 * i + 4))
             for i in range(n)]
    return Document(doc_id, words, 200, 100)


@pytest.fixture(scope="module")
def tiny() -> KVEnsemble:
    # max_length 64: the 90-word page spans several windows, so batching crosses windows too
    return build_model("tiny", seed=0)


@pytest.fixture(scope="module")
def reward(tiny: KVEnsemble) -> RewardModel:
    return RewardModel.from_ensemble(tiny, seed=0).eval()


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return [_mock_doc(n, f"d{n}") for n in (5, 12, 30, 90, 0)]


def _queries(docs: list[Document]) -> list[FieldOutcomes]:
    out = []
    for i, d in enumerate(docs):
        n = len(d.words)
        outcomes = [[], [0], [n - 1], list(range(1, min(n, 4))), list(range(min(n, 60)))]
        for field in FIELDS:
            out.append(FieldOutcomes(i, field, outcomes if n else [[]]))
    return out


def _mock_result(doc: Document, version: str = "kv.ensemble.v1@x") -> ExtractionResult:
    cands = [Candidate("60.30", 0.5, [11]), Candidate("100.00", 0.3, [13]),
             Candidate("RM 60.30", 0.1, [10, 11]), Candidate("39.70", 0.06, []),  # unplaced
             Candidate("CASH", 0.04, [12])]
    return ExtractionResult(doc.id, version, {
        "total": FieldResult("total", cands, 0.55),
        "date": FieldResult("date", [Candidate("19/10/2018", 0.9, [8])], 0.9),
        "company": FieldResult("company", [], 0.8)})


def test_batched_scores_equal_per_document_scores(reward: RewardModel, docs: list) -> None:
    queries = _queries(docs)
    batched = reward.score(docs, queries, batch_size=3)
    for q, s in zip(queries, batched):
        single = reward.score([docs[q.doc]], [FieldOutcomes(0, q.field, q.outcomes)])[0]
        assert s.shape == (len(q.outcomes),)
        assert torch.allclose(s, single, atol=1e-5), (q.doc, q.field)


def test_a_document_is_encoded_once_for_all_its_fields(reward: RewardModel, docs: list,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = reward.page_states

    def counting(pages, batch_size=8):
        seen.append(len(pages))
        return real(pages, batch_size)

    monkeypatch.setattr(reward, "page_states", counting)
    reward.score(docs, _queries(docs))
    assert seen == [len(docs)]


def test_scores_are_differentiable_and_fields_differ(tiny: KVEnsemble, docs: list) -> None:
    model = RewardModel.from_ensemble(tiny, seed=1)
    model.train()
    q = [FieldOutcomes(0, "total", [[4], []]), FieldOutcomes(0, "date", [[4], []])]
    total, date = model.score(docs, q)
    assert model.training  # eval-mode forward, the mode restored
    assert not torch.equal(total[0], date[0])  # the field embedding enters the span logit
    (total.sum() + date.sum()).backward()
    assert model.classifier.span_mlp[0].weight.grad is not None
    assert model.classifier.absent_w.grad is not None
    enc = model.encoder.encoder.layer[0].attention.self.query.weight.grad
    assert enc is not None and enc.abs().sum() > 0


def test_bad_outcomes_and_fields_are_refused(reward: RewardModel, docs: list) -> None:
    with pytest.raises(ValueError, match="contiguous"):
        reward.score(docs, [FieldOutcomes(1, "total", [[0, 2]])])
    with pytest.raises(ValueError, match="contiguous"):
        reward.score(docs, [FieldOutcomes(0, "total", [[5]])])  # 5 words: index 5 is past
    with pytest.raises(ValueError, match="schema"):
        reward.score(docs, [FieldOutcomes(0, "iban", [[0]])])
    assert reward.score(docs, []) == []
    assert is_span([3, 4, 5], 6) and not is_span([3, 5], 6) and not is_span([], 6)


def test_save_load_round_trip_scores_equal(reward: RewardModel, docs: list,
                                           tmp_path: Path) -> None:
    reward.save_pretrained(tmp_path / "rm")
    loaded, card = RewardModel.from_pretrained(tmp_path / "rm", "cpu")
    assert card.arch == "tiny" and card.schema.labels == reward.schema.labels
    assert (card.max_length, card.stride) == (64, 16)
    assert loaded.version == reward_version(tmp_path / "rm")
    assert loaded.version.startswith("kv.reward.v1@") and not loaded.training
    queries = _queries(docs)
    for a, b in zip(reward.score(docs, queries), loaded.score(docs, queries)):
        assert torch.equal(a, b)
    reward.save_pretrained(tmp_path / "again")  # same weights, same version
    assert reward_version(tmp_path / "again") == loaded.version


def test_a_bad_folder_gets_a_clear_error(reward: RewardModel, tiny: KVEnsemble,
                                         tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such reward-model directory"):
        RewardModel.from_pretrained(tmp_path / "nope")
    tiny.save_pretrained(tmp_path / "extractor", ModelCard(tiny.schema))
    with pytest.raises(FileNotFoundError, match="that is an extractor"):
        RewardModel.from_pretrained(tmp_path / "extractor")
    d = reward.save_pretrained(tmp_path / "rm")
    card = json.loads((d / REWARD_CARD_FILE).read_text(encoding="utf-8"))
    (d / REWARD_CARD_FILE).write_text(json.dumps({**card, "format": "other/9"}),
                                      encoding="utf-8")
    with pytest.raises(ValueError, match="unsupported format"):
        RewardModel.from_pretrained(d)
    (d / REWARD_CARD_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read"):
        RewardModel.from_pretrained(d)
    (d / REWARD_CARD_FILE).write_text(json.dumps({**card, "field_dim": 8}), encoding="utf-8")
    with pytest.raises(ValueError, match="does not fit"):
        RewardModel.from_pretrained(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="weights are missing"):
        RewardModel.from_pretrained(d)


def test_build_by_name() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        build_reward_model("huge")
    a, b = build_reward_model("tiny", seed=3), build_reward_model("tiny", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values()))
    assert build_reward_model(a) is a


def test_rerank_orders_candidates_by_reward_and_keeps_them(reward: RewardModel,
                                                           docs: list) -> None:
    doc = docs[2]  # 30 words
    res = _mock_result(doc)
    cands = res.fields["total"].candidates
    placed = [0, 1, 2, 4]
    r = reward.score([doc], [FieldOutcomes(0, "total", [cands[j].word_indices
                                                         for j in placed])])[0].tolist()
    out = reward.rerank([res], [doc], k=5, calibrate=lambda d, s: 0.123)[0]
    got = out.fields["total"].candidates
    want = [cands[j] for j in sorted(placed, key=lambda j: -r[placed.index(j)])] + [cands[3]]
    assert [id(c) for c in got] == [id(c) for c in want]  # the same objects, reordered
    assert res.fields["total"].candidates == cands  # the input is left as it was
    conf = out.fields["total"].confidence
    assert conf == (0.55 if got[0] is cands[0] else 0.123)
    assert out.fields["date"].candidates[0] is res.fields["date"].candidates[0]
    assert out.fields["date"].confidence == 0.9 and out.fields["company"].candidates == []
    assert out.model_version == f"kv.ensemble.v1@x+{reward.version}"
    assert out.doc_id == res.doc_id and out.doc_hash == res.doc_hash


def test_rerank_k_leaves_the_tail_in_place(reward: RewardModel, docs: list) -> None:
    doc = docs[2]
    res = _mock_result(doc)
    cands = res.fields["total"].candidates
    out = reward.rerank([res], [doc], k=2)[0].fields["total"].candidates
    assert {id(c) for c in out[:2]} == {id(cands[0]), id(cands[1])}
    assert out[2:] == cands[2:]
    with pytest.raises(ValueError, match="document"):
        reward.rerank([res], [docs[1]])


def test_rerank_follows_the_scores(reward: RewardModel, docs: list,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    doc = docs[2]
    res = _mock_result(doc)
    cands = res.fields["total"].candidates

    def fixed(docs_, queries, dropout=False, batch_size=8):
        assert [q.field for q in queries] == ["total", "date"]
        return [torch.tensor([0.1, 0.9, 0.5, 0.3]), torch.tensor([2.0])]

    monkeypatch.setattr(reward, "score", fixed)
    out = reward.rerank([res], [doc], calibrate=lambda d, s: s / 2)[0].fields["total"]
    assert out.candidates == [cands[1], cands[2], cands[4], cands[0], cands[3]]
    assert out.confidence == pytest.approx(0.3 / 2)  # the new top's own score, calibrated
    ties = RewardModel.from_ensemble(build_model("tiny", seed=0), seed=0).eval()
    with torch.no_grad():
        ties.classifier.span_mlp[2].weight.zero_()
        ties.classifier.span_mlp[2].bias.zero_()
    out = ties.rerank([res], [doc])[0].fields["total"]  # every span scores 0
    assert out.candidates == [cands[0], cands[1], cands[2], cands[4], cands[3]]
    assert out.confidence == 0.55  # same top, same confidence


# -- the reranking predictor: one copy for `kvloop extract --rerank` and the UI's uploads -------

@pytest.fixture(scope="module")
def saved(tiny: KVEnsemble, reward: RewardModel,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rerank")
    tiny.save_pretrained(root / "extractor", ModelCard(tiny.schema))
    reward.save_pretrained(root / "reward")
    return root / "extractor", root / "reward"


def _without_time(results: list[ExtractionResult]) -> list[dict]:
    return [{k: v for k, v in r.export().items() if k != "created_at"} for r in results]


def test_load_predictor_with_rerank_reranks_like_the_reward_model(saved: tuple[Path, Path],
                                                                  docs: list) -> None:
    model_dir, rm_dir = saved
    base = load_predictor(model_dir, "cpu")
    pred = load_predictor(model_dir, "cpu", rerank=rm_dir)
    rm = RewardModel.from_pretrained(rm_dir)[0]
    assert isinstance(pred, RerankingPredictor) and not isinstance(base, RerankingPredictor)
    assert pred.version == f"{base.version}+{rm.version}" and pred.schema == base.schema
    pages = docs[:4]
    want = rm.rerank(base.predict(pages, k=3), pages, 3, extractor_confidence(base))
    got = pred.predict(pages, k=3)
    assert _without_time(got) == _without_time(want)
    assert all(r.model_version == pred.version for r in got)
    # decoding without predict does not rerank, and says so with the extractor's version
    plain = pred.results_from_log_probs(pages, base.pass_log_probs(pages), k=3)
    assert _without_time(plain) == _without_time(base.predict(pages, k=3))
    raw = pred.uncalibrated()
    assert isinstance(raw, RerankingPredictor) and raw.version == pred.version


def test_a_reward_model_for_other_fields_is_refused(saved: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    model_dir, rm_dir = saved
    schema = ModelCard.load(model_dir).schema
    check_reranker(rm_dir, schema)  # fine
    other = build_reward_model("tiny", Schema("t", [FieldSpec("total", "amount")]), seed=0)
    other.save_pretrained(tmp_path / "total-only")
    with pytest.raises(ValueError, match=r"total-only: the reward model scores fields \['total'\]"):
        load_predictor(model_dir, "cpu", rerank=tmp_path / "total-only")
    with pytest.raises(ValueError, match="total-only"):
        check_reranker(tmp_path / "total-only", schema)
    with pytest.raises(FileNotFoundError, match="that is an extractor"):
        check_reranker(model_dir, schema)
    (tmp_path / "total-only" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="weights are missing"):
        check_reranker(tmp_path / "total-only", schema)


def test_uploads_are_reranked_and_say_by_which_reward_model(saved: tuple[Path, Path],
                                                            tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from extractor.loaders.report import LoadReport
    from feedback_ui import ingest
    from feedback_ui.service import ReviewService
    from feedback_ui.store import FeedbackStore

    model_dir, rm_dir = saved
    uploader = ingest.Uploader.load(model_dir, tmp_path / "uploads", rerank=rm_dir)
    assert isinstance(uploader.predictor, RerankingPredictor)
    page = _mock_doc(16, "scan-1")
    # OCR is not what is tested here: the "image" reads as ``page``
    monkeypatch.setattr(ingest, "load_image_folder", lambda path, **kw: LoadReport([page]))
    store = FeedbackStore(tmp_path / "f.db")
    try:
        svc = ReviewService(store, uploader.predictor.schema)
        report = uploader.ingest(svc, [("scan.png", b"\x89PNG not decoded")])
        assert report.added == ["scan-1"] and not report.failures
        stored = store.latest_result("scan-1")
        assert stored is not None
        version = RewardModel.from_pretrained(rm_dir)[0].version
        assert stored[1].model_version == uploader.predictor.version
        assert stored[1].model_version.endswith(f"+{version}")
        want = uploader.predictor.predict([page])[0]
        assert {k: [c.value for c in f.candidates] for k, f in stored[1].fields.items()} == {
            k: [c.value for c in f.candidates] for k, f in want.fields.items()}
    finally:
        store.close()
