"""The extractor as a predictor: documents in, ranked candidates with calibrated confidence out.

``load_predictor(model_dir)`` reads a directory written by ``KVEnsemble.save_pretrained`` (the
trainer writes one) and returns a :class:`KVPredictor`. ``predict`` is preprocess (words ->
windows) -> model (batched, length-bucketed, under ``inference_mode``) -> postprocess (k-best
span decoding per field, merging OCR variants, calibration); it has no side effects.

Merging OCR passes: every pass (``doc.words`` and each of ``doc.variants``) is decoded alone;
a value's merged score is its mean probability over the passes (a uniform mixture: values read
the same way by several passes rise, values only one pass can read stay in the k-best list).

Engine agreement: each pass belongs to an OCR engine (``Document.meta["ocr"]["engines"]``);
a merged candidate lists the engines on whose passes it was the field's best value
(``Candidate.engines``), so ``FieldResult.agreement`` says whether independent engines
(tesseract and PP-OCRv6) read the same value, for calibration and auto-accept to use.

Decisions depend on the OCR that read the page: the "absent" threshold, the confidence
calibrator and the lexicon correction of low-confidence words (``extractor.lexicon``) come from
``ocr_profiles[engine]`` when the model has one for the page's engine (``tesseract`` for
images; a PDF page read from its text layer takes the provided words' profile), else from the
default profile (fitted on the calibration split as loaded, SROIE: the
provided words).

Reranking: ``load_predictor(model_dir, rerank=REWARD_DIR)`` returns a
:class:`RerankingPredictor`, the same predictor whose ``predict`` reorders each field's k-best
by a reward model (best-of-k, ``extractor.model.reward.RewardModel.rerank``), so every caller
(``kvloop extract --rerank``, the review UI's uploads) reranks one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from extractor.align import span_value
from extractor.devices import resolve_device
from extractor.document import (
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    FieldSpec,
    Schema,
    Word,
)
from extractor.lexicon import Lexicon
from extractor.model.calibrate import Calibrator, DecisionProfile, ocr_engine, profile_engine
from extractor.model.card import VERSION_PREFIX, model_version
from extractor.model.decode import FieldDecoding, ValueFn, decode_field
from extractor.model.ensemble import KVEnsemble
from extractor.model.reward import (
    WEIGHTS_FILE,
    Calibrate,
    RewardCard,
    RewardModel,
    load_reward_model,
)
from extractor.normalize import lenient_key
from extractor.straight_through import AcceptDecision, StraightThrough


@dataclass
class MergedField:
    """One field's candidates merged over a page's OCR passes (best first), and P(absent)."""

    candidates: list[Candidate]
    absent_prob: float


class KVPredictor:
    """A loaded ensemble plus its decision profiles and lexicon; see the module docstring."""

    def __init__(self, model: KVEnsemble, default_profile: DecisionProfile | None = None,
                 version: str = f"{VERSION_PREFIX}@unsaved",
                 ocr_profiles: dict[str, DecisionProfile] | None = None,
                 lexicon: Lexicon | None = None,
                 acceptance: StraightThrough | None = None) -> None:
        self.model = model.eval()
        # Absent threshold, calibrator and word correction for pages of any OCR engine without
        # a profile of its own; fitted on the calibration split (``training``).
        self.default_profile = default_profile or DecisionProfile()
        self.version = version
        self.ocr_profiles = dict(ocr_profiles or {})
        self.lexicon = lexicon
        # Certified auto-accept (the card's ``straight_through``); ``None``: nothing is.
        self.acceptance = acceptance

    @property
    def schema(self) -> Schema:
        return self.model.schema

    # -- model -------------------------------------------------------------------------------
    def _passes(self, doc: Document) -> list[tuple[str, list[Word]]]:
        return [(doc.ocr, doc.words)] + list(doc.variants.items())

    @staticmethod
    def pass_engines(doc: Document) -> list[str]:
        """The OCR engine of each pass of ``doc`` (``_passes`` order): from the page's OCR
        settings, from a ``engine:pass`` name, else the engine of its main words."""
        main = ocr_engine(doc.ocr)
        known = (doc.meta.get("ocr") or {}).get("engines") or {}
        return [main] + [known.get(name) or (name.split(":", 1)[0] if ":" in name else main)
                         for name in doc.variants]

    @torch.inference_mode()
    def member_pass_log_probs(self, docs: Sequence[Document], members: Sequence[str],
                              batch_size: int = 8, with_variants: bool = True,
                              ) -> dict[str, list[list[torch.Tensor]]]:
        """Per member, per document, per OCR pass: per-word tag log-probs [n, L] (one forward
        for all ``members``)."""
        pages, owner = [], []
        for i, doc in enumerate(docs):
            for _, words in (self._passes(doc) if with_variants else [(doc.ocr, doc.words)]):
                pages.append(([w.text for w in words], doc.normalized_boxes(words)))
                owner.append(i)
        outs = self.model.word_log_probs(pages, members=members, batch_size=batch_size)
        per_member: dict[str, list[list[torch.Tensor]]] = {m: [[] for _ in docs]
                                                           for m in members}
        for i, o in zip(owner, outs):
            for m in members:
                per_member[m][i].append(o[m].cpu())  # decoding is per-word Python work
        return per_member

    def pass_log_probs(self, docs: Sequence[Document], member: str = "fused",
                       batch_size: int = 8, with_variants: bool = True,
                       ) -> list[list[torch.Tensor]]:
        """Per document, per OCR pass: per-word tag log-probs [n, L] of ``member``."""
        return self.member_pass_log_probs(docs, (member,), batch_size, with_variants)[member]

    # -- postprocess -------------------------------------------------------------------------
    def profile(self, doc: Document) -> DecisionProfile:
        """The decision profile for ``doc``: given words and a PDF's text layer take the
        provided one (``profile_engine``); an image page its OCR engine's, else that of another
        engine that read the page, else any image engine's (a model fitted on PP-OCRv6 pages
        reading tesseract ones: image input either way), else the default one."""
        if profile_engine(doc.ocr) == "provided":  # with OCR passes beside them in training
            return self.ocr_profiles.get("provided", self.default_profile)
        engines = self.pass_engines(doc)
        for engine in [*dict.fromkeys(engines), *self.ocr_profiles]:
            if engine in self.ocr_profiles and engine != "provided":
                return self.ocr_profiles[engine]
        return self.default_profile

    def uncalibrated(self) -> KVPredictor:
        """The same model and decisions with identity calibrators (raw confidences)."""
        return KVPredictor(self.model, replace(self.default_profile, calibrator=Calibrator()),
                           self.version,
                           {k: replace(p, calibrator=Calibrator())
                            for k, p in self.ocr_profiles.items()},
                           self.lexicon)

    def _span_value(self, correct_below: float) -> ValueFn:
        """Span values with the lexicon's corrections of text words read below the bar."""
        lexicon = self.lexicon
        if lexicon is None or correct_below <= 0:
            return span_value

        def value(words: Sequence[Word], indices: Sequence[int], spec: FieldSpec) -> str:
            if spec.type != "text":
                return span_value(words, indices, spec)
            picked = lexicon.correct_words([words[i] for i in sorted(set(indices))],
                                           correct_below)
            return span_value(picked, range(len(picked)), spec)

        return value

    def merged_field(self, doc: Document, field: str, lps: Sequence[torch.Tensor],
                     k: int) -> MergedField:
        """The ``k`` best values of ``field`` merged over the page's passes, and P(absent)."""
        passes = self._passes(doc)[:len(lps)]
        value_fn = self._span_value(self.profile(doc).correct_below)
        decs: list[tuple[str, FieldDecoding]] = [
            (name, decode_field(words, lp, self.schema, field, k=k,
                                max_len=self.model.max_span_len,
                                source="model" if p == 0 else f"variant:{name}",
                                value_fn=value_fn))
            for p, ((name, words), lp) in enumerate(zip(passes, lps))]
        merged: dict[str, Candidate] = {}
        best_of: dict[str, set[str]] = {}  # value key -> engines whose best reading it is
        for p, ((_, dec), engine) in enumerate(zip(decs, self.pass_engines(doc))):
            for c in dec.candidates:
                key = lenient_key(c.value)
                if key not in merged:  # variant word indices do not point into doc.words
                    merged[key] = Candidate(c.value, 0.0, c.word_indices if p == 0 else [],
                                            c.source)
                merged[key].score += c.score / len(decs)
            if dec.candidates:
                best_of.setdefault(lenient_key(dec.candidates[0].value), set()).add(engine)
        cands = sorted(merged.values(), key=lambda c: -c.score)[:k]
        if len(set(self.pass_engines(doc))) > 1:
            for c in cands:
                c.engines = sorted(best_of.get(lenient_key(c.value), ()))
        for c in cands:
            c.logprob = float(torch.tensor(max(c.score, 1e-300)).log())
        return MergedField(cands, sum(d.absent_prob for _, d in decs) / len(decs))

    def decide(self, doc: Document, field: str, merged: MergedField) -> FieldResult:
        """The field's answer under ``doc``'s decision profile: absent, or the candidates."""
        profile = self.profile(doc)
        # "absent" is compared with "present" (all spans together), not with the single best
        # span, which would drop fields whose mass is spread over several spans.
        if not merged.candidates or merged.absent_prob >= profile.absent_threshold:
            return FieldResult(field, [], profile.calibrator(merged.absent_prob))
        spec = self.schema[field]
        # a changed value gets a copy: a threshold search decides the same candidates again
        candidates = [c if (v := profile.written(spec, c.value)) == c.value
                      else replace(c, value=v) for c in merged.candidates]
        return FieldResult(field, candidates, profile.calibrator(merged.candidates[0].score))

    def merged_fields(self, docs: Sequence[Document], per_doc: Sequence[Sequence[torch.Tensor]],
                      k: int = 5) -> list[dict[str, MergedField]]:
        """Per document and field, the merged candidates (decided by :meth:`decide`)."""
        return [{f: self.merged_field(doc, f, lps, k) for f in self.schema.field_names}
                for doc, lps in zip(docs, per_doc)]

    def results_from_merged(self, docs: Sequence[Document],
                            merged: Sequence[dict[str, MergedField]]) -> list[ExtractionResult]:
        """Decide merged fields (lets a threshold search decode once)."""
        return [ExtractionResult(doc.id, self.version,
                                 {f: self.decide(doc, f, m) for f, m in fields.items()},
                                 doc_hash=doc.content_hash())
                for doc, fields in zip(docs, merged)]

    def results_from_log_probs(self, docs: Sequence[Document],
                               per_doc: Sequence[Sequence[torch.Tensor]],
                               k: int = 5) -> list[ExtractionResult]:
        """Decode already computed per-pass log-probs (lets benchmarks reuse one forward)."""
        return self.results_from_merged(docs, self.merged_fields(docs, per_doc, k))

    # -- public API --------------------------------------------------------------------------
    def predict(self, docs: list[Document], k: int = 5,
                batch_size: int = 8) -> list[ExtractionResult]:
        """k-best candidates per field (fused model, OCR variants merged), calibrated."""
        return self.results_from_log_probs(docs, self.pass_log_probs(docs, "fused", batch_size),
                                           k)

    def accept_decisions(self, doc: Document, result: ExtractionResult
                         ) -> dict[str, AcceptDecision]:
        """Per field, whether ``result`` would be auto-accepted and why (never without a
        certificate: a model without one, or a reranked result, accepts nothing)."""
        if self.acceptance is not None and result.model_version == self.version:
            return self.acceptance.decide(doc, result, self.schema)
        why = ("no certified thresholds in the model card (kvloop thresholds fit)"
               if self.acceptance is None else
               f"the certificates are for {self.version}, not {result.model_version}")
        return {f: AcceptDecision(f, False, float("nan"), None, result.model_version, why)
                for f in self.schema.field_names}

    def word_tags(self, doc: Document) -> list[str]:
        """Fused argmax BIO label per word of ``doc.words`` (for seqeval)."""
        lp = self.pass_log_probs([doc], "fused", with_variants=False)[0][0]
        labels = self.schema.labels
        return [labels[i] for i in lp.argmax(-1).tolist()]


def _same_fields(reward_schema: Schema, schema: Schema, where: str | Path) -> None:
    """``ValueError`` naming ``where`` when the reward model scores other fields than the
    extractor extracts (it could not score them, or would score values it never sees)."""
    if reward_schema.labels != schema.labels:
        raise ValueError(f"{where}: the reward model scores fields {reward_schema.field_names}, "
                         f"the extractor extracts {schema.field_names}")


def check_reranker(reward_dir: str | Path, schema: Schema) -> None:
    """Whether ``reward_dir`` can rerank an extractor of ``schema`` without loading it: a
    reward-model card for the same fields, and its weights file. ``OSError``/``ValueError``
    naming the folder otherwise (for commands that load the model later, e.g. the UI)."""
    card = RewardCard.load(reward_dir)  # says so when the folder holds an extractor
    weights = Path(reward_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: the reward model's weights are missing")
    _same_fields(card.schema, schema, reward_dir)


class RerankingPredictor(KVPredictor):
    """A predictor whose ``predict`` reranks ``base``'s k-best with ``reward``.

    The model, decisions and lexicon are ``base``'s (shared, not copied). ``predict``'s
    results carry ``version``, ``"<extractor version>+<reward version>"``
    (``RewardModel.rerank``), so a stored result says which reward model ordered it.
    Confidence stays the extractor's calibrated probability of the new top candidate
    (``extractor_confidence``; the module docstring of ``extractor.model.reward`` says why).
    The lower-level decoding (``results_from_log_probs``, ``results_from_merged``) does not
    rerank, so its results carry ``base``'s version.
    """

    def __init__(self, base: KVPredictor, reward: RewardModel,
                 where: str | Path | None = None) -> None:
        _same_fields(reward.schema, base.schema, where or reward.version)
        super().__init__(base.model, base.default_profile, f"{base.version}+{reward.version}",
                         base.ocr_profiles, base.lexicon)
        self.base, self.reward = base, reward
        self._calibrate = extractor_confidence(base)

    def predict(self, docs: list[Document], k: int = 5,
                batch_size: int = 8) -> list[ExtractionResult]:
        """``base``'s k-best per field, each field's ``k`` reordered by reward."""
        results = self.base.predict(docs, k=k, batch_size=batch_size)
        return self.reward.rerank(results, docs, k, self._calibrate, batch_size)

    def results_from_merged(self, docs: Sequence[Document],
                            merged: Sequence[dict[str, MergedField]]) -> list[ExtractionResult]:
        return self.base.results_from_merged(docs, merged)  # not reranked: base's version

    def uncalibrated(self) -> RerankingPredictor:
        return RerankingPredictor(self.base.uncalibrated(), self.reward)


def load_predictor(model_dir: str | Path, device: str | None = None,
                   rerank: str | Path | None = None) -> KVPredictor:
    """Load a saved model directory (``kvloop.json`` + ``bert/`` + ``layoutlm/`` + tokenizer)
    onto ``device`` (``extractor.devices.resolve_device``: default CUDA when present); with
    ``rerank`` (a reward-model directory, ``kvloop train reward``), a
    :class:`RerankingPredictor` with that reward model on the same device. Errors
    (``OSError``, ``ValueError``) name the folder at fault."""
    model, card = KVEnsemble.from_pretrained(model_dir, resolve_device(device))
    pred = KVPredictor(model, card.decisions, model_version(model_dir), card.ocr_profiles,
                       Lexicon.load(model_dir), card.straight_through)
    if rerank is None:
        return pred
    return RerankingPredictor(pred, load_reward_model(rerank, device), where=rerank)


def extractor_confidence(predictor: KVPredictor) -> Calibrate:
    """``calibrate`` for :meth:`RewardModel.rerank`: the predictor's calibrated probability of
    a candidate's score, under the decision profile of the page's OCR engine."""
    def calibrate(doc: Document, score: float) -> float:
        return predictor.profile(doc).calibrator(score)

    return calibrate
