"""Configuration of reward-model training (``kvloop train reward``).

Parameters, by group:

* start: ``init`` (the parent extractor, required: the reward model reranks its k-best, its
  k-best on gold pages become rejected values, and its version is the lineage) and ``arch``
  (empty: the encoder starts as a copy of ``init``'s LayoutLM member, same tokenizer and
  windows; a zoo name, ``extractor.model.zoo.ARCHS``: from the zoo's weights instead),
  ``field_dim`` / ``head_hidden`` (the head, ``extractor.model.reward.RewardHead``);
* feedback and dev pages, documented once in ``training.feedback_trainer.FeedbackConfig``:
  ``store`` and its filters (``dataset``, ``operator``, ``model_version``, ``since``,
  ``until``, ``max_feedback_docs``), ``dev_data``/``dev_split``/``dev_ocr``/``max_dev_docs``;
* gold: ``gold_data`` (a dataset spec, e.g. SROIE) with ``gold_split`` (``fit``: pages the
  extractor was fitted on are fine, its mistakes there are still mistakes), ``gold_ocr``,
  ``max_gold_docs``; the gold span against every wrong value in the parent's ``k``-best;
* loss: ``pair_weight`` (Bradley-Terry on chosen vs rejected, Ouyang et al. 2022 Eq. 1),
  ``margin`` (Touvron et al. 2023 Eq. 2; 0 is none), ``pointwise_weight`` (BCE: accepted
  values 1, rejected values of fields without a placed right value 0);
* evaluation: ``heldout_share`` (share of the documents, seeded, whose pairs are held out
  for pairwise accuracy) and, on the dev pages, the dev lenient F1 of the parent's k-best
  reranked, against the parent's own (the best reranked F1 picks the kept epoch);
* shared (``TrainConfig``): ``out`` (a new folder, never overwritten), ``epochs``,
  ``batch_size`` (documents per step), ``lr`` (encoder), ``head_lr`` (the reward head),
  ``layout_lr``, ``seed``, ``patience``, ``device``, ...

The store-trainer fields about refitting the extractor's decisions (``calib_data`` and
friends) do not apply: a reward model makes no decisions of its own, so setting
``calib_data`` is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extractor.loaders import OCR_MODES
from extractor.splits import SPLITS
from training.feedback_trainer import FeedbackConfig


@dataclass
class RewardConfig(FeedbackConfig):
    arch: str = field(default="", metadata={
        "help": "'' starts the encoder from init's LayoutLM member; a zoo name ('minilm', "
                "'tiny') from the zoo's weights"})
    field_dim: int = field(default=32, metadata={"help": "size of the learned field embedding"})
    head_hidden: int = field(default=0, metadata={
        "help": "width of the span MLP (0: the encoder's hidden size)"})
    gold_data: str = field(default="", metadata={
        "help": "dataset spec of gold pages: gold span vs the parent's wrong k-best ('' none)"})
    gold_split: str = field(default="fit", metadata={"help": "split of gold_data"})
    gold_ocr: str = field(default="provided", metadata={"help": "OCR of gold_data pages"})
    max_gold_docs: int | None = field(default=None, metadata={
        "help": "use at most this many gold pages"})
    k: int = field(default=5, metadata={
        "help": "the parent's k-best: wrong values on gold pages, candidates reranked on dev"})
    pair_weight: float = field(default=1.0, metadata={
        "help": "weight of the Bradley-Terry loss on chosen-vs-rejected pairs"})
    margin: float = field(default=0.0, metadata={
        "help": "Bradley-Terry margin: chosen must beat rejected by this many logits"})
    pointwise_weight: float = field(default=0.5, metadata={
        "help": "weight of the BCE term: accepted values 1, values of reject-only fields 0"})
    heldout_share: float = field(default=0.2, metadata={
        "help": "share of the documents (seeded) whose pairs are held out for accuracy"})
    dropout: bool = field(default=False, metadata={
        "help": "encoder dropout while training (off: the function trained is the one used)"})
    epochs: int = field(default=3, metadata={"help": "passes over the pairs"})
    batch_size: int = field(default=4, metadata={
        "help": "documents per step (one forward scores all their fields' values)"})
    lr: float = field(default=1e-4, metadata={"help": "learning rate of the encoder"})
    head_lr: float = field(default=1e-3, metadata={"help": "learning rate of the reward head"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calib_data:
            raise ValueError("calib_data: a reward model has no decisions to refit")
        if self.arch:
            from extractor.model.zoo import ARCHS
            if self.arch not in ARCHS:
                raise ValueError(f"unknown arch {self.arch!r}; choose one of {ARCHS} or ''")
        if self.gold_split not in SPLITS:
            raise ValueError(f"gold_split must be one of {SPLITS}, got {self.gold_split!r}")
        if self.gold_ocr not in OCR_MODES:
            raise ValueError(f"gold_ocr must be one of {OCR_MODES}, got {self.gold_ocr!r}")
        if self.k < 1 or self.field_dim < 1 or self.head_hidden < 0:
            raise ValueError("k and field_dim must be >= 1, head_hidden >= 0")
        if self.pair_weight < 0 or self.pointwise_weight < 0 or self.margin < 0:
            raise ValueError("pair_weight, pointwise_weight and margin must be >= 0")
        if self.pair_weight == 0 and self.pointwise_weight == 0:
            raise ValueError("pair_weight and pointwise_weight cannot both be 0")
        if not 0.0 <= self.heldout_share < 1.0:
            raise ValueError(f"heldout_share must be in [0, 1), got {self.heldout_share}")
