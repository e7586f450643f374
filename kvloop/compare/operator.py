"""The simulated operator: who reviews documents for ``kvloop compare``, and what it costs.

The operator knows the gold values and works through ``feedback_ui.service.ReviewService``
exactly as the correction UI does (``open`` -> choose per field -> ``save_correction``, or
``skip``), so the store receives what a person's review would leave there. Three regimes:

* ``full``: accept a right shown value, pick the right alternative, else type the gold value
  ("not present" when gold is absent and a value is shown). Values are compared with
  ``extractor.normalize.lenient_key`` (SROIE's lenient rule), so a shown ``abc sdn bhd`` for gold
  ``ABC SDN BHD`` is accepted as it is.
* ``choice-only``: never types. Where ``full`` would type, it rejects the shown value ("wrong
  value": the field stays open); with nothing shown there is nothing to reject, so it cannot
  express the fix and skips the document.
* ``noisy``: a ``full`` or ``choice-only`` operator (``noise_base``) who errs on a field decision
  with probability ``error_rate`` (``slip``): a typed value gets one keystroke slip
  (``mistype``); a choice goes to a wrong answer (another alternative than the right one, or
  accepting the wrong shown value). A decision with no wrong answer on screen (a right value
  shown and no other alternative) cannot go wrong.

Randomness is per document (``random.Random(f"{seed}:{doc_id}")``): a document gets the same
decisions whatever was reviewed before it, so selection strategies do not change the noise.

Effort (``EffortModel``) prices each decision with the Keystroke-Level Model (Card, Moran &
Newell 1980) and the UI's measured "save and next" latency; ``ReviewLog`` adds it up.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from extractor.document import Document
from extractor.normalize import lenient_key
from feedback_ui.service import (
    FieldChoice,
    FieldView,
    InvalidValueError,
    QueueFilter,
    ReviewService,
    ReviewTask,
)

REGIMES = ("full", "choice-only", "noisy")
NOISE_BASES = ("full", "choice-only")
SKIPS = ("unexpressible", "invalid")
Gold = Mapping[str, "str | None"]
"""A document's gold values: field -> value (``None``: the field is absent from the page)."""


def _from_dict(cls: Any, d: Mapping[str, Any], what: str) -> Any:
    """``cls(**d)``, with an error naming unknown keys and the known ones."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {unknown}; known keys: {known}")
    return cls(**d)


# -- configuration -----------------------------------------------------------------------------

@dataclass
class OperatorConfig:
    """Who the simulated operator is.

    Regime:
        regime: ``full``, ``choice-only`` or ``noisy`` (see the module docstring).
        noise_base: what a ``noisy`` operator is underneath: ``full`` or ``choice-only``.
    Noise:
        error_rate: probability, per field decision, that a ``noisy`` operator errs; must be 0
            for the other regimes (they never err).
        seed: seeds each document's decisions (with the document id).
    """

    regime: str = field(default="full", metadata={"help": f"one of {REGIMES}"})
    noise_base: str = field(default="full", metadata={
        "help": f"the noisy operator underneath: one of {NOISE_BASES}"})
    error_rate: float = field(default=0.0, metadata={
        "help": "probability per field decision that a noisy operator errs, in [0, 1]"})
    seed: int = field(default=0, metadata={"help": "seed of the operator's decisions"})

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"operator regime must be one of {REGIMES}, got {self.regime!r}")
        if self.noise_base not in NOISE_BASES:
            raise ValueError(f"operator noise_base must be one of {NOISE_BASES}, "
                             f"got {self.noise_base!r}")
        if isinstance(self.error_rate, bool) or not isinstance(self.error_rate, (int, float)) \
                or not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"operator error_rate must be a number in [0, 1], "
                             f"got {self.error_rate!r}")
        if self.regime != "noisy" and self.error_rate != 0:
            raise ValueError(f"operator error_rate {self.error_rate} needs regime 'noisy' (the "
                             f"{self.regime!r} operator never errs); set regime='noisy' and "
                             f"noise_base={self.regime!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"operator seed must be an integer, got {self.seed!r}")

    @property
    def base(self) -> str:
        """The error-free regime the operator decides with (``noise_base`` when noisy)."""
        return self.noise_base if self.regime == "noisy" else self.regime

    def export(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OperatorConfig:
        return _from_dict(cls, d, "operator config")


# -- one field decision --------------------------------------------------------------------------

def full_choice(view: FieldView, gold: str | None,
                rng: random.Random | None = None) -> FieldChoice:
    """The ``full`` operator: accept a right shown value, pick the right alternative, else
    type gold; gold absent: accept an empty field, "not present" for a shown value."""
    if gold is None:
        return FieldChoice("accept") if view.value is None else FieldChoice("not_present")
    if view.value is not None and lenient_key(view.value) == lenient_key(gold):
        return FieldChoice("accept")
    for i, cand in enumerate(view.candidates):
        if lenient_key(cand.value) == lenient_key(gold):
            return FieldChoice("pick", pick_index=i)
    return FieldChoice("edit", value=gold)


def choice_only_choice(view: FieldView, gold: str | None,
                       rng: random.Random | None = None) -> FieldChoice | None:
    """The ``choice-only`` operator: ``full`` without typing. Where ``full`` types, reject the
    shown value; ``None`` (cannot express it: skip the document) when nothing is shown."""
    c = full_choice(view, gold)
    if c.action != "edit":
        return c
    return FieldChoice("reject") if view.value is not None else None


CHOOSERS: dict[str, Callable[[FieldView, str | None, random.Random | None],
                             FieldChoice | None]] = {
    "full": full_choice, "choice-only": choice_only_choice}


_PUNCTUATION = ".,-/:"


def mistype(value: str, rng: random.Random) -> str | None:
    """``value`` with one keystroke slip: one visible character substituted (by one of its
    kind: digit, upper- or lower-case letter, punctuation), dropped or doubled.

    Whitespace is never touched, so the result always differs from ``value`` under
    ``lenient_key``; a single visible character is never dropped (that would clear the field).
    ``None`` when ``value`` has no visible character.
    """
    positions = [i for i, ch in enumerate(value) if not ch.isspace()]
    if not positions:
        return None
    kinds = ["substitute", "double"] + (["drop"] if len(positions) > 1 else [])
    kind, i = rng.choice(kinds), rng.choice(positions)
    ch = value[i]
    if kind == "drop":
        return value[:i] + value[i + 1:]
    if kind == "double":
        return value[:i] + ch + value[i:]
    pool = (string.digits if ch.isdigit() else string.ascii_uppercase if ch.isupper()
            else string.ascii_lowercase if ch.isalpha() else _PUNCTUATION)
    new = rng.choice([c for c in pool if c.casefold() != ch.casefold()])
    return value[:i] + new + value[i + 1:]


def slip(view: FieldView, gold: str | None, intended: FieldChoice | None,
         rng: random.Random) -> FieldChoice | None:
    """The wrong decision a noisy operator makes instead of ``intended``.

    Typing: the gold value mistyped (``mistype``). Anything else: one of the wrong answers on
    screen, uniformly: accepting the shown value (wrong whenever ``intended`` is not an accept)
    or picking an alternative that is not gold. ``None`` when there is no wrong answer (a right
    shown value and no other alternative; nothing to mistype).
    """
    if intended is not None and intended.action == "edit":
        typo = mistype(intended.value or "", rng)
        return None if typo is None else FieldChoice("edit", value=typo)
    right = None if gold is None else lenient_key(gold)
    options = [] if intended is not None and intended.action == "accept" else [
        FieldChoice("accept")]
    options += [FieldChoice("pick", pick_index=i) for i, c in enumerate(view.candidates)
                if lenient_key(c.value) != right]
    return rng.choice(options) if options else None


@dataclass(frozen=True)
class Decision:
    """What the operator did with one field: its choice (``None``: cannot express it) and
    whether it is an injected error."""

    choice: FieldChoice | None
    erred: bool = False


def decide(cfg: OperatorConfig, view: FieldView, gold: str | None,
           rng: random.Random) -> Decision:
    """One field decision of the operator ``cfg``: its regime's choice, or with probability
    ``error_rate`` (noisy only; one draw of ``rng`` per field) a ``slip``."""
    intended = CHOOSERS[cfg.base](view, gold, rng)
    if cfg.regime != "noisy" or rng.random() >= cfg.error_rate:
        return Decision(intended)
    wrong = slip(view, gold, intended, rng)
    return Decision(intended) if wrong is None else Decision(wrong, erred=True)


def noisy_choice(view: FieldView, gold: str | None, rng: random.Random, *,
                 base: str = "full", error_rate: float = 0.1) -> FieldChoice | None:
    """The ``noisy`` operator's decision (``decide`` without the error flag)."""
    return decide(OperatorConfig("noisy", base, error_rate), view, gold, rng).choice


# -- effort --------------------------------------------------------------------------------------

def _seconds_field(default: float, text: str) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass
class EffortModel:
    """Seconds an operator spends on a review, in Keystroke-Level Model operators.

    KLM operators (Card, Moran & Newell 1980, "The Keystroke-Level Model for User Performance
    Time with Interactive Systems", CACM 23(7), Fig. 1; the same values in their book "The
    Psychology of Human-Computer Interaction", 1983, ch. 8):
        keystroke_s: K = 0.28 s, a key or mouse-button press by an average non-secretary
            typist (40 wpm; 0.20 s for an average skilled typist, 55 wpm).
        point_s: P = 1.1 s, pointing with the mouse at a target on the screen.
        home_s: H = 0.4 s, moving a hand between keyboard and mouse.
        mental_s: M = 1.35 s, mental preparation before an act.
    Reading (assumptions, not measured; skilled silent reading runs at ~250-300 words a minute,
    ~0.2-0.24 s a word: Rayner 1998, "Eye movements in reading and information processing: 20
    years of research", Psychol. Bull. 124(3)):
        read_value_s: 1.2 s to read a field's shown value (2-5 words) and find it on the page
            image; with M it makes the per-field verification (``verify_s`` = 2.55 s).
        read_alternative_s: 0.5 s per alternative read (short strings) while scanning them.
    Per document:
        orient_s: 2.0 s to take in a new page (M plus a glance over its layout; assumption).
        save_keys: 2 keystrokes for "save and next" (Ctrl+Enter; KLM counts each key of a
            chord).
        latency_s: 0.26 s, the UI's "save and next" until the next page is drawn
            (BENCHMARKS.md, "Correction UI": median 252-272 ms, 260 ms at an operator's pace).

    Per field: ``verify_s`` (read the shown value, M), then the action (``action_s``). The
    UI's answer keys are chords (Alt+key), two keystrokes each as KLM counts them:
        accept: 2K (Alt+A: the UI moves on to the next field);
        reject: M + 2K (Alt+X);
        pick alternative i: (i + 1) x read_alternative_s (scanning down to it) + M + 2K
            (Alt + digit i + 1);
        edit (type a value): M + H + K x (len(value) + 3) (the UI puts the keyboard in the
            field's text box, caret after its text: Ctrl+A, the value, then Enter);
        clear: M + K (an API action; the UI asks for "not present" instead);
        not_present: M + 2K (Alt+N);
        cannot express (``None``): M, and the document is skipped with the "Skip" button
            (no shortcut: H + P + K) instead of "save and next".

    With the defaults, accept 0.56 < reject 1.91 < pick 2.41-4.41 (alternative 1-5) <
    typing a 20-character value 8.19 s.
    """

    keystroke_s: float = _seconds_field(0.28, "K: one keystroke or button press")
    point_s: float = _seconds_field(1.1, "P: pointing with the mouse")
    home_s: float = _seconds_field(0.4, "H: hand between keyboard and mouse")
    mental_s: float = _seconds_field(1.35, "M: mental preparation")
    read_value_s: float = _seconds_field(1.2, "reading a shown value against the image")
    read_alternative_s: float = _seconds_field(0.5, "reading one alternative")
    orient_s: float = _seconds_field(2.0, "taking in a new page")
    save_keys: float = _seconds_field(2.0, "keystrokes of 'save and next' (Ctrl+Enter)")
    latency_s: float = _seconds_field(0.26, "UI latency of 'save and next'")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"effort {f.name} must be a number >= 0, got {v!r}")

    @property
    def verify_s(self) -> float:
        """Checking one field's shown value against the page: M + reading."""
        return self.mental_s + self.read_value_s

    @property
    def accepted_field_s(self) -> float:
        """Verifying a right value and accepting it: what an auto-accepted field saves."""
        return self.verify_s + self.action_s(FieldChoice("accept"))

    @property
    def skip_s(self) -> float:
        """Pressing "Skip" (a button without a shortcut): H + P + K."""
        return self.home_s + self.point_s + self.keystroke_s

    def action_s(self, choice: FieldChoice | None) -> float:
        """The seconds of one field's action after verifying it (see the class docstring)."""
        K, M = self.keystroke_s, self.mental_s
        chord = 2 * K  # Alt + a key
        if choice is None:
            return M
        if choice.action == "accept":
            return chord
        if choice.action == "clear":
            return M + K
        if choice.action in ("reject", "not_present"):
            return M + chord
        if choice.action == "pick":
            return ((choice.pick_index or 0) + 1) * self.read_alternative_s + M + chord
        if choice.action == "edit":
            return M + self.home_s + K * (len(choice.value or "") + 3)
        raise ValueError(f"no effort for action {choice.action!r}")

    def document_s(self, saved: bool) -> float:
        """Per document: orientation, "save and next" (or "Skip") and the UI's latency."""
        leave = self.save_keys * self.keystroke_s if saved else self.skip_s
        return self.orient_s + leave + self.latency_s

    def seconds(self, choices: Mapping[str, FieldChoice | None], views: Sequence[FieldView],
                saved: bool | None = None) -> float:
        """One document: every shown field verified and acted on (a field without a choice is
        accepted, as ``save_correction`` does), plus the per-document time. ``saved``
        defaults to "every field could be expressed"."""
        if saved is None:
            saved = all(c is not None for c in choices.values())
        per_field = sum(self.verify_s + self.action_s(choices.get(v.name, FieldChoice()))
                        for v in views)
        return self.document_s(saved) + per_field

    def export(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EffortModel:
        """The model with the keys of ``d`` overriding the defaults; unknown keys are errors."""
        return _from_dict(cls, d, "effort model")


# -- reviewing -----------------------------------------------------------------------------------

@dataclass
class DocumentReview:
    """One document the operator opened: per field its action (``None``: could not express
    it), whether it was skipped (``"unexpressible"``, ``"invalid"``) and what it cost."""

    doc_id: str
    actions: dict[str, str | None]
    skipped: str | None
    seconds: float
    errors: int = 0  # injected (noisy) decisions among ``actions``

    @property
    def saved(self) -> bool:
        return self.skipped is None

    def export(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ReviewLog:
    """Every document one review pass opened, in order, and the totals over them.

    ``actions`` and ``errors_saved`` count saved documents only (what reached the store);
    ``seconds`` and ``errors_injected`` count every opened document (a skipped one still took
    the operator's time).
    """

    documents: list[DocumentReview] = field(default_factory=list)

    def add(self, rec: DocumentReview) -> DocumentReview:
        self.documents.append(rec)
        return rec

    @property
    def reviewed(self) -> int:
        return sum(d.saved for d in self.documents)

    @property
    def skipped_unexpressible(self) -> int:
        return sum(d.skipped == "unexpressible" for d in self.documents)

    @property
    def skipped_invalid(self) -> int:
        return sum(d.skipped == "invalid" for d in self.documents)

    @property
    def actions(self) -> Counter[str]:
        return Counter(a for d in self.documents if d.saved for a in d.actions.values()
                       if a is not None)

    @property
    def seconds(self) -> float:
        return sum(d.seconds for d in self.documents)

    @property
    def errors_injected(self) -> int:
        return sum(d.errors for d in self.documents)

    @property
    def errors_saved(self) -> int:
        return sum(d.errors for d in self.documents if d.saved)

    @property
    def saved_ids(self) -> list[str]:
        return [d.doc_id for d in self.documents if d.saved]

    def summary(self) -> dict[str, Any]:
        """The totals, JSON-able (``actions`` sorted by name)."""
        return {"reviewed": self.reviewed, "skipped_unexpressible": self.skipped_unexpressible,
                "skipped_invalid": self.skipped_invalid,
                "actions": dict(sorted(self.actions.items())),
                "seconds": round(self.seconds, 3),
                "errors_injected": self.errors_injected, "errors_saved": self.errors_saved}

    def export(self) -> dict[str, Any]:
        """The totals and every document's record, JSON-able."""
        return {**self.summary(), "documents": [d.export() for d in self.documents]}


def regime_label(operator: Mapping[str, Any]) -> str:
    """The name a regime's stores, steps and rows go under: ``full``, ``choice-only``, or
    ``noisy-<base>-<error rate>`` (two noisy operators with different rates are two regimes)."""
    cfg = OperatorConfig.from_dict(operator)
    return f"noisy-{cfg.noise_base}-{cfg.error_rate:g}" if cfg.regime == "noisy" else cfg.regime


class SimulatedOperator:
    """An operator who knows gold, reviewing through a ``ReviewService`` as the UI does."""

    def __init__(self, config: OperatorConfig | None = None,
                 effort: EffortModel | None = None) -> None:
        self.config = config or OperatorConfig()
        self.effort = effort or EffortModel()

    def rng_for(self, doc_id: str) -> random.Random:
        """The document's own random stream (independent of review order)."""
        return random.Random(f"{self.config.seed}:{doc_id}")

    def decide_all(self, task: ReviewTask, gold: Gold) -> dict[str, Decision]:
        """A decision for every field of ``task``, in the task's field order."""
        rng = self.rng_for(task.doc_id)
        return {fv.name: decide(self.config, fv, gold.get(fv.name), rng) for fv in task.fields}

    def review_task(self, service: ReviewService, task: ReviewTask, gold: Gold,
                    operator_name: str) -> DocumentReview:
        """Decide every field of an opened ``task``, then save it, or skip it when a field
        cannot be expressed or the service refuses a value (``InvalidValueError``)."""
        decisions = self.decide_all(task, gold)
        choices = {k: d.choice for k, d in decisions.items()}
        expressed = {k: c for k, c in choices.items() if c is not None}
        skipped: str | None = None
        if len(expressed) < len(choices):
            skipped = "unexpressible"
        else:
            try:
                service.save_correction(task, expressed, operator_name)
            except InvalidValueError:
                skipped = "invalid"
        if skipped is not None:
            service.skip(task, operator_name)
        return DocumentReview(
            doc_id=task.doc_id, skipped=skipped,
            actions={k: None if c is None else c.action for k, c in choices.items()},
            seconds=self.effort.seconds(choices, task.fields, saved=skipped is None),
            errors=sum(d.erred for d in decisions.values()))

    def review(self, service: ReviewService, docs: Iterable[Document],
               operator_name: str, log: ReviewLog | None = None) -> ReviewLog:
        """Open each of ``docs`` (``ReviewService.open``) and review it; gold is ``doc.gold``."""
        log = log if log is not None else ReviewLog()
        for doc in docs:
            task = service.open(doc.id, operator_name)
            log.add(self.review_task(service, task, doc.gold or {}, operator_name))
        return log

    def review_queue(self, service: ReviewService, gold: Mapping[str, Gold],
                     operator_name: str, flt: QueueFilter | None = None,
                     log: ReviewLog | None = None) -> ReviewLog:
        """Work through the routed queue (``ReviewService.next_document``) until it is empty,
        opening each document at most once (a skipped or rejected one stays queued)."""
        log = log if log is not None else ReviewLog()
        seen: set[str] = set()
        while (task := service.next_document(operator_name, flt, exclude=seen)) is not None:
            seen.add(task.doc_id)
            log.add(self.review_task(service, task, gold.get(task.doc_id, {}), operator_name))
        return log
