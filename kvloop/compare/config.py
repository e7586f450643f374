"""Configuration of ``kvloop compare``: data, budget, operator, arms, seeds, execution.

A comparison is read from a YAML or JSON file (``kvloop compare --config FILE``) or one of the
packaged presets by name (``demo``, ``quick``, ``quick-tuned``, ``full``, ...;
``kvloop/compare/configs/``). Keys are the fields of ``CompareConfig``; ``operator`` and
``effort`` are mappings given to ``kvloop.compare.operator.OperatorConfig`` and
``EffortModel.from_dict``; ``arm_options``
maps an arm name to trainer config fields that override the arm's defaults (for example
``{rl: {kl_coef: 0.1}}``; the arms are ``kvloop.compare.arms.ARMS``). ``tuning`` (``{trials: N,
seed: S}``, ``kvloop.compare.tuning``) gives every arm that trains N trials of its own main
settings, chosen on the selection split; absent, every arm runs its defaults. An arm named
``X+tuned`` in ``arms`` is ``X`` tuned that way beside ``X`` at its defaults (then only the
``+tuned`` arms are tuned, ``tuning`` giving their trials). An option key no
config of the run has is an error naming the valid ones, never dropped. Flags of ``kvloop
compare`` override the file (``--seeds``, ``--out``, ``--arms``, ...).

Splits (``extractor.splits``): the start model and the pool come from ``fit``; trainers pick
their epoch on ``select_split`` (default ``calibration``) and refit their decisions on it;
arms are scored on ``dev`` and on its **unseen-vendor** slice (dev documents whose company
appears in no ``fit`` document), which no learner reads. Choosing epochs on dev and reporting
dev would flatter every arm; choosing them on calibration keeps dev a test set. The deployment
case (``vendor_split``, ``start_model``) splits by vendor instead (``kvloop.compare.data``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kvloop.compare.arms import ARMS, TUNED, Arm, arm_named, base_name, is_arm

STRATEGIES: tuple[str, ...] = ("random", "least-confident", "expected-error")
PRESETS: tuple[str, ...] = ("demo", "quick", "quick-choice", "quick-tuned", "full",
                             "cord-tiny", "cord-quick", "cord-quick-starts",
                             "deployment", "deployment-quick", "cord-deployed-quick")


@dataclass(frozen=True)
class CompareConfig:
    """One comparison (see the module docstring)."""

    name: str = "comparison"
    data: str = "demo"
    """Dataset spec (``extractor.loaders``): ``demo`` (the synthetic generator, ``demo_docs``
    receipts), a SROIE folder, a JSONL of documents, ..."""
    demo_docs: int = 120
    out: str = "runs/compare"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    start_docs: int = 25
    """``fit`` documents (the first ones) the start model is trained on from gold."""
    start_epochs: int = 10
    start_options: dict[str, Any] = field(default_factory=dict)
    """Fields of the start model's ``training.supervised_config.SupervisedConfig`` (``lr``,
    ``batch_size``, ...)."""
    start_per_seed: bool = False
    """One start model per seed (its training varies too), or one shared by every seed (the
    seeds then vary selection, operator noise and the arms' training)."""
    start_seed: int | None = None
    """Seed of the shared start model (``None``: the last of ``seeds``). Set it to run a subset of the seeds (``--seeds 0``) against a finished run's start
    model: the shared model must not depend on which seeds are asked for."""
    pool_docs: int | None = None
    """The next ``fit`` documents, gold hidden from every learner (``None``: all the rest)."""
    start_model: str | None = None
    """An already trained model folder to start from (``kvloop train base``'s, or another
    comparison's ``start/shared``) instead of training one: the receipts its card says it was
    trained on are the start documents, kept out of the pool and the evaluation sets."""
    vendor_split: bool = False
    """The deployment case (``kvloop.compare.vendor_split``): the pool holds only vendors the
    start model never saw, and arms are scored on ``new-vendor`` and ``seen-vendor``
    documents separately (forgetting: the seen-vendor F1 change)."""
    vendor_seed: int = 0
    """Seed of the vendor draw of ``vendor_split`` (which vendors the start model sees)."""
    rounds: int = 2
    docs_per_round: int = 50
    strategy: str = "random"
    operator: dict[str, Any] = field(default_factory=lambda: {"regime": "full"})
    regimes: list[str] = field(default_factory=list)
    """Feedback regimes to run one after another on the same start model, pool and seeds
    (``[full, choice-only]``: does the answer depend on what operators give?); empty: the
    operator's own regime. A ``noisy`` entry takes the operator's ``error_rate`` and
    ``noise_base``."""
    effort: dict[str, Any] = field(default_factory=dict)
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    arm_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    trainer_options: dict[str, Any] = field(default_factory=dict)
    """Config fields given to every trainer (``batch_size``, ``lr``, ...)."""
    reward_options: dict[str, Any] = field(default_factory=dict)
    """Config fields of the round's reward model (``training.reward_config.RewardConfig``)."""
    epochs: int = 2
    arch: str = "minilm"
    k: int = 5
    select_split: str = "calibration"
    max_select_docs: int | None = None
    refit_decisions: bool = True
    dev_split: str = "dev"
    max_eval_docs: int | None = None
    unseen_vendor: bool = True
    extra_eval: dict[str, str] = field(default_factory=dict)
    """More evaluation sets: name -> dataset spec (every document of it is scored)."""
    tuning: dict[str, Any] = field(default_factory=dict)
    """Equal tuning of every arm that trains (``kvloop.compare.tuning``): ``{trials: N,
    seed: S, rule: best|significant}``; empty: every arm runs its default settings. With
    ``X+tuned`` arms, only they are tuned, with these trials (empty: the defaults)."""
    baseline: str = "sft"
    n_boot: int = 1000
    keep_models: bool = False
    """Keep every arm's weights (GBs); by default only cards and curves stay once scored."""
    keep_reward_models: bool = False
    """Keep each round's reward model (about 90 MB a seed and round with MiniLM) even when
    ``keep_models`` is off, so that arms added to the folder later read the very model the
    others did instead of one trained again (bit-identical on the same threads, not across
    thread counts or executors: BENCHMARKS.md)."""
    device: str = "cpu"
    threads: int = 2
    ray: bool = False
    ray_address: str | None = None
    cpus_per_task: int = 1

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if not is_arm(a)]
        if unknown:
            raise ValueError(f"arms: unknown {unknown}; choose from {list(ARMS)}, or "
                             f"X{TUNED} for an arm X that trains (X tuned alike)")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms: listed twice: {self.arms}")
        bad_opts = [a for a in self.arm_options if not is_arm(a)]
        if bad_opts:
            raise ValueError(f"arm_options: unknown arms {bad_opts}; choose from {list(ARMS)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not self.seeds:
            raise ValueError("seeds: at least one seed")
        for name in ("start_docs", "rounds", "docs_per_round", "epochs", "start_epochs", "k",
                     "demo_docs", "n_boot", "threads", "cpus_per_task"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pool_docs", "max_select_docs", "max_eval_docs"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 (or null), got {v}")
        from kvloop.compare.operator import REGIMES  # the UI service: not for --list-arms

        bad_regimes = [r for r in self.regimes if r not in REGIMES]
        if bad_regimes or len(set(self.regimes)) != len(self.regimes):
            raise ValueError(f"regimes: each one of {REGIMES}, once; got {self.regimes}")
        if self.tuning:
            from kvloop.compare.tuning import TuningConfig

            TuningConfig.from_dict(self.tuning)
        if self.start_model and self.start_per_seed:
            raise ValueError("start_model is one model: it cannot be one start per seed "
                             "(start_per_seed)")
        if self.baseline not in self.arms:
            raise ValueError(f"baseline {self.baseline!r} is not among the arms {self.arms}")

    def check_options(self) -> None:
        """``ValueError`` naming every option key no config of the run has, with the valid
        ones: ``arm_options`` per arm, ``start_options`` (the start model's
        ``SupervisedConfig``), ``reward_options`` (``RewardConfig``) and ``trainer_options``
        (given to every trainer of the run, so a field of each of their configs)."""
        from training.config import check_fields
        from training.registry import get_trainer

        check_fields(get_trainer("base").config_class(), self.start_options, "start_options")
        check_fields(get_trainer("reward").config_class(), self.reward_options,
                     "reward_options")
        classes = [a.config_class() for a in self.arms_to_run]  # checks arm_options too
        if self.needs_reward:
            classes.append(get_trainer("reward").config_class())
        for cls in dict.fromkeys(c for c in classes if c is not None):
            check_fields(cls, self.trainer_options, "trainer_options")

    @property
    def arms_to_run(self) -> list[Arm]:
        """The arms to run, with ``arm_options`` merged into their trainer options."""
        return [arm_named(a).with_options({**self.arm_options.get(base_name(a), {}),
                                           **self.arm_options.get(a, {})})
                for a in self.arms]  # X+tuned starts from X's options

    @property
    def operators(self) -> list[dict[str, Any]]:
        """The simulated operator of each regime to run, in order."""
        if not self.regimes:
            return [dict(self.operator)]
        out = []
        for regime in self.regimes:
            # the fields a regime does not use are left out, not zeroed: the operator is part
            # of the review steps' settings, so `full` must be the same dict in every config
            op = {**self.operator, "regime": regime}
            if regime != "noisy":
                op.pop("noise_base", None)
                op.pop("error_rate", None)
            elif self.operator.get("regime", "full") != "noisy":
                op["noise_base"] = self.operator.get("regime", "full")
            out.append(op)
        return out

    @property
    def needs_reward(self) -> bool:
        return any(a.needs_reward() for a in self.arms_to_run)

    def export(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not out["tuning"]:
            del out["tuning"]  # off: exported as no key, so untuned configs read the same
        return out


def preset_path(name: str) -> Path:
    """The packaged config file of a preset."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {PRESETS} or give a file")
    return Path(str(resources.files("kvloop.compare") / "configs" / f"{name}.yaml"))


def load_config(spec: str, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """A preset name or a YAML/JSON file, with ``overrides`` (non-``None`` values) on top.
    Errors name the file and the problem."""
    from training.cli import ConfigError, read_config_file

    path = preset_path(spec) if spec in PRESETS else Path(spec)
    values = read_config_file(path)
    names = {f.name for f in dataclasses.fields(CompareConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; a comparison config has "
                          f"{sorted(names)}")
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        cfg = CompareConfig(**values)
        cfg.check_options()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from e
    return cfg
