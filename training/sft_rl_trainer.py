"""SFT then RL as one command: fine-tune on the corrections, then RL from the fine-tuned model.

This is the order of RLHF pipelines (Ouyang et al. 2022, "Training language models to follow
instructions with human feedback", Sec. 3.5: supervised fine-tuning first, then PPO with a KL
penalty to the *SFT* model, Eq. 2). Stage 1 is ``training.sft_trainer.SFTTrainer`` on ``init``,
writing the new version ``<out>.sft`` (a sibling folder); stage 2 is
``training.rl_trainer.RLTrainer`` with ``init=<out>.sft``, writing ``out``. RL's start model,
hence its KL reference (the penalty, ``kl_stop``, the reward-hacking check's starting dev F1),
is the SFT model, not ``init``: RL may move only so far from the fine-tuned policy.

Lineage: each stage writes an ordinary card saying how its weights were made. ``out``'s card:
trainer ``rl``, ``parent_version`` = the SFT version, ``config.init`` = ``<out>.sft``; that
card's: trainer ``sft``, ``parent_version`` = ``init``'s version. Following parents from
``out`` gives ``out -> <out>.sft -> init``.

Data read once: the store's feedback (both stages learn from the same corrections although the
store is live: read twice, RL could see corrections SFT never did), the dev pages, the reward
(loaded, or checked, before the SFT stage runs, so a missing reward fails in seconds, not
after the SFT stage).

Decisions are refitted once, on the final weights (``calib_data`` goes to the RL stage only).
Nothing in the RL stage reads the intermediate's decisions: the policy is the span
categorical, and dev F1 is scored with default decisions
(``training.supervised_trainer.evaluate``); refitting them on ``<out>.sft`` would cost a
calibration pass whose result nothing uses. ``<out>.sft`` therefore keeps ``init``'s decisions
(its SFT stage logs so): a version to train from, not to serve as it is
(``kvloop train calibrate`` refits it).

Never overwriting, and resuming. ``FileExistsError`` when ``out`` exists. When ``<out>.sft``
exists, it is reused only if it is this run's SFT stage, finished by an interrupted run
(``new_version_dir`` renames a version into place only when complete): its card says trainer
``sft``, parent = ``init``'s version, the same stage config (every field, ``out``
included), and its weights hash to the card's version. Then only the RL stage runs; otherwise
``FileExistsError`` says why. A reused stage read the feedback earlier: when the store now gives
other feedback (operators saved since), that is logged, not refused; both cards record what
each stage read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from extractor.devices import resolve_device
from extractor.document import Document
from extractor.model.card import ModelCard, model_version
from training.base import BaseTrainer, TrainResult
from training.feedback_data import FeedbackSet
from training.feedback_trainer import check_run, feedback_of, load_dev_docs
from training.rewards import Reward, load_reward
from training.rl_trainer import RLTrainer
from training.sft_config import SFTConfig
from training.sft_rl_config import SFTThenRLConfig
from training.sft_trainer import SFTTrainer

log = logging.getLogger(__name__)


def not_reusable(sft_dir: Path, cfg: SFTConfig) -> str | None:
    """Why ``sft_dir`` is not the SFT stage ``cfg`` would write (``None``: it is)."""
    try:
        card = ModelCard.load(sft_dir)
    except (OSError, ValueError) as e:
        return f"not a model version: {e}"
    rec = card.training
    if rec is None or rec.trainer != SFTTrainer.name:
        return f"made by {rec.trainer if rec else 'no trainer'}, not {SFTTrainer.name}"
    if rec.parent_version != model_version(cfg.init):
        return f"its parent is {rec.parent_version}, not {cfg.init} ({model_version(cfg.init)})"
    expected = {**cfg.export(), "out": str(Path(cfg.out))}  # as ``FeedbackTrainer.record``
    changed = sorted(k for k in expected.keys() | rec.config.keys()
                     if expected.get(k) != rec.config.get(k))
    if changed:
        return f"made with another SFT config ({', '.join(changed)} differ)"
    if card.version != model_version(sft_dir):
        return f"its weights are not those of its card's version {card.version}"
    return None


class SFTThenRLTrainer(BaseTrainer):
    """Stage 1 SFT on ``init`` -> ``<out>.sft``; stage 2 RL from it -> ``out`` (module docstring)."""

    name = "sft-rl"

    def __init__(self, cfg: SFTThenRLConfig, feedback: FeedbackSet | None = None, *,
                 reward: Reward | None = None,
                 replay_docs: Sequence[Document] | None = None,
                 pool_docs: Sequence[Document] | None = None,
                 dev_docs: Sequence[Document] | None = None) -> None:
        check_run(cfg, has_feedback=feedback is not None or bool(cfg.store))
        self.cfg, self.out = cfg, Path(cfg.out)
        self.sft_cfg, self.sft_out = cfg.sft_config(), Path(cfg.sft_out)
        self.reuse = self.sft_out.exists()
        if self.reuse and (why := not_reusable(self.sft_out, self.sft_cfg)):
            raise FileExistsError(f"{self.sft_out}: already exists and is not this run's SFT "
                                  f"stage ({why}); a trainer never overwrites a version: move "
                                  "it, or choose another --out")
        schema = ModelCard.load(cfg.init).schema
        self.feedback = (feedback if feedback is not None
                         else feedback_of(cfg, schema.field_names))
        self.reward = reward if reward is not None else load_reward(
            cfg.reward, schema, cfg.reward_transform, resolve_device(cfg.device))
        self.dev_docs = load_dev_docs(cfg, dev_docs)  # each stage checks the overlap
        self.replay_docs, self.pool_docs = replay_docs, pool_docs

    def sft_stage(self) -> Path:
        """``<out>.sft``: trained now, or the one an interrupted run finished."""
        if self.reuse:
            card = ModelCard.load(self.sft_out)
            read = card.training.feedback if card.training else None
            if read is None or read.ids_sha256 != self.feedback.ref.ids_sha256:
                log.warning("%s: the reused SFT stage read other feedback (%s documents) than "
                            "the store gives now (%d documents); the RL stage learns from the "
                            "latter", self.name, read.n_documents if read else "?",
                            len(self.feedback.documents))
            log.info("%s: reusing %s (%s), this run's SFT stage", self.name, self.sft_out,
                     card.version)
            return self.sft_out
        return self.sft_trainer().train().out

    def sft_trainer(self) -> SFTTrainer:
        """Stage 1: SFT on ``init`` with the run's feedback, writing ``<out>.sft``."""
        return SFTTrainer(self.sft_cfg, self.feedback, replay_docs=self.replay_docs,
                          dev_docs=self.dev_docs)

    def rl_trainer(self) -> RLTrainer:
        """Stage 2: RL from ``<out>.sft`` (so its frozen reference is the SFT model)."""
        return RLTrainer(self.cfg.rl_config(), self.feedback, reward=self.reward,
                         pool_docs=self.pool_docs, dev_docs=self.dev_docs)

    def train(self) -> TrainResult:
        """Run both stages; the result is the RL stage's (``out``), timed over both."""
        t0 = time.perf_counter()
        sft = self.sft_stage()
        result = self.rl_trainer().train()
        log.info("%s: wrote %s <- %s <- %s (child <- parent)", self.name, result.out, sft,
                 self.cfg.init)
        return replace(result, seconds=time.perf_counter() - t0)

    def describe(self) -> dict[str, Any]:
        return {"trainer": self.name, "init": self.cfg.init, "sft": str(self.sft_out),
                "out": str(self.out), "reuse_sft": self.reuse,
                "documents": len(self.feedback.documents), "dev_pages": len(self.dev_docs)}
