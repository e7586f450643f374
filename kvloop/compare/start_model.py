"""A comparison started from an already trained model (``start_model: DIR``).

Which receipts the model was trained on is read from its card's training record (the
trainer's ``data``, ``train_split`` and ``max_docs``, as ``kvloop train base`` and the
comparison's own start model write them), so that the comparison can keep them out of its
pool and its evaluation sets. The epoch-choice split (``dev_split``) is reported too: a model
whose epoch was chosen on the documents a comparison scores is flattered on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extractor.document import Document


@dataclass(frozen=True)
class StartModelData:
    """What a start model's card says it learned from and chose its epoch on."""

    model_dir: Path
    data: str
    train_split: str
    max_docs: int | None
    dev_split: str | None

    @classmethod
    def read(cls, model_dir: str | Path) -> StartModelData:
        """``FileNotFoundError`` (not a model folder) or ``ValueError`` naming the card when it
        does not say what the model was trained on."""
        from extractor.model.card import CARD_FILE, ModelCard

        d = Path(model_dir)
        card = ModelCard.load(d)
        config: dict[str, Any] = card.training.config if card.training else {}
        if not config.get("data"):
            raise ValueError(f"{d / CARD_FILE}: its training record names no data, so the "
                             "receipts it was trained on cannot be kept out of the pool")
        return cls(d, str(config["data"]), str(config.get("train_split", "fit")),
                   config.get("max_docs"), config.get("dev_split"))

    def training_documents(self) -> list[Document]:
        """The receipts the model was trained on (their gold names the vendors it saw)."""
        from training.data import load_split

        try:
            docs = load_split(self.data, self.train_split, max_docs=self.max_docs)
        except (OSError, ValueError) as e:
            raise ValueError(f"{self.model_dir}: its training data {self.data!r} cannot be "
                             f"read from here: {e}") from e
        if not docs:
            raise ValueError(f"{self.model_dir}: its training data {self.data!r} has no "
                             f"documents in split {self.train_split!r}")
        return docs

    def epoch_choice_ids(self) -> set[str]:
        """Ids of the documents its epoch was chosen on (empty when not recorded)."""
        from training.data import load_split

        if not self.dev_split:
            return set()
        try:
            return {d.id for d in load_split(self.data, self.dev_split,
                                              max_docs=self.max_docs)}
        except (OSError, ValueError):
            return set()
