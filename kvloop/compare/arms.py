"""The arms of ``kvloop compare``: each one says what it needs and how it runs.

An arm learns from a round's feedback (or does not) and is then scored. Each is a small frozen
object: its trainer (a ``training.registry`` name) and that trainer's options, whether it
reads the round's reward model, what it adds at evaluation (reranking, a vendor memory), when
it runs and what budget its rows report. The runner, the units and the analysis ask the arm;
they never test its name.

Adding an arm: one entry in :data:`ARMS` (a new kind of arm: one class here).

Arms are listed (``kvloop compare --list-arms``) without importing torch: trainer classes are
imported only when an arm trains, or when its options are checked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvloop.compare.learn import gold_feedback, train_gold, trainer_extras, vendor_memory
from kvloop.compare.search import IntRange, Scale, SearchSpace
from kvloop.compare.specs import UnitContext
from training.config import make_config
from training.registry import get_trainer

SFT_STAGE_EPOCHS = 3
"""``training.sft_rl_config.SFTThenRLConfig.sft_epochs``'s default (a test holds them equal;
importing the trainers here would put torch behind ``kvloop compare --list-arms``)."""


# Each trainer's main settings and their ranges, for equal tuning (``kvloop.compare.tuning``):
# every arm of a trainer searches its own space with the same number of trials. The learning
# rate moves ``head_lr`` by the same factor (one step size); epochs are the most the trainer
# may run (it keeps its best epoch on the selection pages); ``samples_per_field`` is RL's K
# samples per document and field.
EPOCHS = IntRange(1, 4)
STEP = Scale(0.2, 5.0, tied_fields=("head_lr",))
SEARCH_SPACES: dict[str, SearchSpace] = {
    "sft": {"epochs": EPOCHS, "lr": STEP},
    "base": {"epochs": EPOCHS, "lr": STEP},
    "rl": {"epochs": EPOCHS, "lr": STEP, "kl_coef": Scale(0.1, 10.0),
           "samples_per_field": IntRange(2, 8)},
    # the RL stage's settings; its SFT stage runs SFT's defaults (sft-long is its control)
    "sft-rl": {"epochs": EPOCHS, "lr": STEP, "kl_coef": Scale(0.1, 10.0),
               "samples_per_field": IntRange(2, 8)},
    "dpo": {"epochs": EPOCHS, "lr": STEP, "beta": Scale(0.1, 10.0)},
}


@dataclass(frozen=True)
class Evaluation:
    """What an arm adds when its model is scored: a reward model reranking the k best, a
    vendor memory offering saved values."""

    reward_dir: str | None = None
    memory: Any = None


@dataclass(frozen=True)
class Arm:
    """The start model as it is, scored at every round: no feedback (the floor)."""

    name: str
    help: str = ""
    trainer: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    reference: bool = False
    """Compared like every arm but never named the best: it uses gold the reviews do not
    give (the ceiling, the exact-reward ablation)."""
    tuned: bool = False
    """Tuned alike (``kvloop.compare.tuning``) even when the run's other arms keep their
    defaults: ``sft+tuned`` beside ``sft`` (:func:`arm_named`)."""

    # -- what it needs --------------------------------------------------------------------------
    def needs_reward(self) -> bool:
        """Whether it reads the round's reward model (trained once, shared by the arms)."""
        return False

    def from_start_model(self) -> bool:
        """Whether its rows at every round are the start model's scores (it never learns)."""
        return True

    def runs_at(self, rnd: int, rounds: int) -> bool:
        """Whether it trains or scores at round ``rnd`` of ``rounds``."""
        return not self.from_start_model()

    def budget(self, review: dict[str, Any], pool_docs: int) -> dict[str, Any]:
        """The review budget its rows report (``reviewed``, ``seconds``)."""
        return review

    def row_extras(self, reward_extras: dict[str, Any]) -> dict[str, Any]:
        """What its rows carry from the round's reward model (what it read)."""
        return dict(reward_extras) if self.needs_reward() else {}

    def search_space(self) -> SearchSpace:
        """Its main settings and their ranges (:data:`SEARCH_SPACES`; empty: nothing to
        tune, it trains nothing)."""
        return SEARCH_SPACES.get(self.trainer, {})

    def config_class(self) -> type | None:
        """Its trainer's config class (``None``: it trains nothing)."""
        if not self.trainer:
            return None
        return get_trainer(self.trainer).config_class()

    def check_options(self, options: Mapping[str, Any], where: str) -> None:
        """``ValueError`` naming unknown option keys and the valid ones."""
        cls = self.config_class()
        valid = sorted(f.name for f in dataclasses.fields(cls)) if cls else []
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {unknown} for arm {self.name!r}; "
                             f"valid: {valid}")

    def with_options(self, options: Mapping[str, Any]) -> Arm:
        """This arm with ``options`` over its own (checked)."""
        if not options:
            return self
        self.check_options(options, "arm_options")
        return dataclasses.replace(self, options={**self.options, **options})

    # -- how it runs ----------------------------------------------------------------------------
    def train(self, ctx: UnitContext, out: Path, reward_dir: str | None) -> dict[str, Any]:
        """Train into ``out`` from the start model; what it measured while learning."""
        return {}

    def evaluation(self, ctx: UnitContext, reward_dir: str | None) -> Evaluation:
        return Evaluation()

    def settings(self) -> dict[str, Any]:
        """What a finished step of this arm was made with (``kvloop.compare.steps``): the
        arm's options and what it reads; the keys of the run folders already written."""
        return {"name": self.name, "trainer": self.trainer, "options": dict(self.options),
                "needs_reward": self.needs_reward(), "rerank": False, "vendor_memory": False,
                "gold": False, "pool": False, "help": self.help,
                **({"tuned": True} if self.tuned else {})}


@dataclass(frozen=True)
class Rerank(Arm):
    """The start model's k best reranked by the round's reward model; no weights change."""

    def needs_reward(self) -> bool:
        return True

    def from_start_model(self) -> bool:
        return False

    def evaluation(self, ctx: UnitContext, reward_dir: str | None) -> Evaluation:
        return Evaluation(reward_dir=reward_dir)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "rerank": True}


@dataclass(frozen=True)
class VendorMemoryArm(Arm):
    """The start model with the values operators saved for the same vendor as candidates."""

    def from_start_model(self) -> bool:
        return False

    def evaluation(self, ctx: UnitContext, reward_dir: str | None) -> Evaluation:
        return Evaluation(memory=vendor_memory(ctx.store))

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "vendor_memory": True}


@dataclass(frozen=True)
class FeedbackArm(Arm):
    """A feedback trainer (``trainer``, ``options``) from the start model on the round's
    store. With ``options["reward"] == "oracle"`` it learns from the feedback with every
    document's gold put back (the exact-match reward reads it)."""

    def from_start_model(self) -> bool:
        return False

    def trainer_values(self, ctx: UnitContext, out: Path,
                       reward_dir: str | None) -> dict[str, Any]:
        return {**ctx.trainer_values(out), **self.options}

    def train(self, ctx: UnitContext, out: Path, reward_dir: str | None) -> dict[str, Any]:
        spec = get_trainer(self.trainer)
        values = self.trainer_values(ctx, out, reward_dir)
        cfg: Any = make_config(spec.config_class(), values, f"arm {self.name}")
        if values.get("reward") == "oracle":
            spec.trainer_class()(cfg, gold_feedback(ctx, cfg)).train()
        else:
            spec.trainer_class()(cfg).train()
        return trainer_extras(out)


@dataclass(frozen=True)
class RewardFeedbackArm(FeedbackArm):
    """A feedback trainer that reads the round's reward model (RL); ``pool``: it also samples
    on the unreviewed pool documents."""

    pool: bool = False

    def needs_reward(self) -> bool:
        return True

    def trainer_values(self, ctx: UnitContext, out: Path,
                       reward_dir: str | None) -> dict[str, Any]:
        values = ctx.trainer_values(out)
        if self.options.get("reward") != "oracle":
            values["reward"] = reward_dir
        if self.pool:
            values.update(pool_data=ctx.pool_nogold_file, pool_split="all")
        return {**values, **self.options}

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "pool": self.pool}


@dataclass(frozen=True)
class GoldArm(Arm):
    """The ceiling: supervised training from the start model on the gold of every pool
    document (no operator involved). It does not depend on the round: trained once, at the
    last."""

    def from_start_model(self) -> bool:
        return False

    def runs_at(self, rnd: int, rounds: int) -> bool:
        return rnd == rounds

    def budget(self, review: dict[str, Any], pool_docs: int) -> dict[str, Any]:
        return {"reviewed": pool_docs, "seconds": math.nan}

    def train(self, ctx: UnitContext, out: Path, reward_dir: str | None) -> dict[str, Any]:
        train_gold(ctx, out, self.options)
        return trainer_extras(out)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "gold": True}


ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("none", help="the start model, no feedback (the floor)"),
    FeedbackArm("sft", "SFT on the corrected values (cross-entropy on their spans)", "sft"),
    FeedbackArm("sft-ul", "SFT plus unlikelihood -log(1 - p) on the values operators rejected",
                "sft", {"unlikelihood_weight": 1.0}),
    Rerank("rerank", "the start model's k best reranked by the reward model (no policy "
                     "update)"),
    RewardFeedbackArm("rl", "RLOO against the reward model on the reviewed documents", "rl",
                      {"algorithm": "rloo"}),
    RewardFeedbackArm("rl-judged", "RLOO whose every group holds the values the operator "
                                   "kept and rejected, summed exactly (sum-and-sample)", "rl",
                      {"algorithm": "rloo", "judged_outcomes": True}),
    RewardFeedbackArm("rl-pool", "RLOO on reviewed plus unreviewed pool documents (half of "
                                 "each batch)", "rl", {"algorithm": "rloo", "pool_share": 0.5},
                      pool=True),
    RewardFeedbackArm("ppo", "PPO (clipped ratio) against the reward model, exact KL penalty",
                      "rl", {"algorithm": "ppo"}),
    FeedbackArm("dpo", "DPO on chosen-vs-rejected values", "dpo", {"loss_type": "dpo"}),
    FeedbackArm("dpop", "DPO-Positive: the chosen log-prob kept from falling below the "
                        "reference's", "dpo", {"loss_type": "dpop"}),
    FeedbackArm("dpo-diff", "DPO on only the words where chosen and rejected values differ",
                "dpo", {"loss_type": "diff_words"}),
    # sft-rl's SFT stage runs SFT's own default epochs (3), whatever the config's `epochs` (the
    # RL stage's): this control runs SFT alone that long, so sft-rl minus sft-long is what the
    # RL stage adds and sft-long minus sft what the longer SFT adds (equal in `full`: epochs 3).
    FeedbackArm("sft-long", "control for sft-rl: SFT for as many epochs as sft-rl's SFT stage "
                            f"({SFT_STAGE_EPOCHS})", "sft", {"epochs": SFT_STAGE_EPOCHS}),
    FeedbackArm("sft-ul-long", "sft-ul for as many epochs as sft-long "
                               f"({SFT_STAGE_EPOCHS}): does unlikelihood add to longer SFT?",
                "sft", {"unlikelihood_weight": 1.0, "epochs": SFT_STAGE_EPOCHS}),
    RewardFeedbackArm("sft-rl", "SFT on the corrections, then RLOO from the SFT model",
                      "sft-rl", {"algorithm": "rloo"}),
    VendorMemoryArm("vendor-memory", "values operators saved for the same vendor offered as "
                                     "candidates; no weights change"),
    FeedbackArm("rl-oracle", "ablation: RLOO with the exact-match reward (is the reward model "
                             "the bottleneck?)", "rl", {"algorithm": "rloo", "reward": "oracle"},
                reference=True),
    GoldArm("gold", "ceiling: supervised training on the gold of every pool document", "base",
            reference=True),
)}


TUNED = "+tuned"


def arm_named(name: str) -> Arm:
    """The arm called ``name``: one of :data:`ARMS`, or ``X+tuned``, arm ``X`` given equal
    tuning (its trials of its own settings on the selection split, ``kvloop.compare.tuning``)
    while ``X`` itself keeps its defaults in the same run, so default and tuned are paired on
    the same start model, reviews and documents. ``KeyError`` naming the valid names."""
    if name in ARMS:
        return ARMS[name]
    base = base_name(name)
    if base != name and base in ARMS and ARMS[base].search_space():
        return dataclasses.replace(ARMS[base], name=name, tuned=True)
    raise KeyError(f"unknown arm {name!r}; choose from {list(ARMS)}, or X{TUNED} for an arm X "
                   f"that trains ({', '.join(a for a in ARMS if ARMS[a].search_space())})")


def is_arm(name: str) -> bool:
    try:
        arm_named(name)
    except KeyError:
        return False
    return True


def base_name(name: str) -> str:
    """``sft`` for ``sft+tuned``; the name itself otherwise."""
    return name.removesuffix(TUNED)


def arm_order_key(name: str) -> tuple[int, bool, str]:
    """Arms in the order :data:`ARMS` lists them, ``X+tuned`` right after ``X``, unknown
    names last."""
    known = list(ARMS)
    base = base_name(name)
    return (known.index(base) if base in known else len(known), name != base, name)


def floor_arm() -> str:
    """The arm every other is compared with to ask "does it learn at all?"."""
    return next(a.name for a in ARMS.values() if a.from_start_model())


def references(names: Iterable[str] = ()) -> tuple[str, ...]:
    """The arms never named the best, the ceiling (:func:`ceiling_arm`) first; tuned
    variants among ``names`` (``gold+tuned``) are references as their base arms are."""
    refs = [a for a in ARMS.values() if a.reference]
    # in the order named (a set's order changes with the process: the report lists these)
    refs += [a for a in map(arm_named, dict.fromkeys(n for n in names if n not in ARMS))
             if a.reference]
    return tuple(a.name for a in sorted(refs, key=lambda a: not isinstance(a, GoldArm)))


def ceiling_arm() -> str:
    return next(a.name for a in ARMS.values() if isinstance(a, GoldArm))
