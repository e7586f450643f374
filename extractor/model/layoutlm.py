"""Build a LayoutLM token classifier from BERT weights.

LayoutLM (Xu et al. 2020, arXiv:1912.13318, Sec. 2.2) is BERT plus four 2-D position
embeddings (x0, y0, x1, y1 of each token's box on a 0-1000 grid) and two more for box width
and height, summed into the input embeddings. Every other weight has BERT's name and shape, so
we copy BERT in and start the new layout embeddings at zero: at step 0 the LayoutLM member
computes exactly what the BERT member does, and training moves it away only as far as the
layout helps.
"""

from __future__ import annotations

import math

import torch
from transformers import BertConfig, LayoutLMConfig, LayoutLMForTokenClassification

LAYOUT_EMBEDDINGS = ("x_position_embeddings", "y_position_embeddings",
                     "h_position_embeddings", "w_position_embeddings")


LAYOUT_INITS = ("sinusoidal", "zero")
SINUSOIDAL_ROW_NORM = 0.1  # per table; BERT's 1-D position embeddings have row norm ~0.5


def sinusoidal_table(rows: int, dim: int, generator: torch.Generator,
                     row_norm: float = SINUSOIDAL_ROW_NORM) -> torch.Tensor:
    """``[rows, dim]`` sin/cos code of the row index, randomly rotated, each row of norm ``row_norm``."""
    pos = torch.arange(rows, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    table = torch.zeros(rows, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
    table = table @ rotation
    return table * (row_norm / table.norm(dim=1, keepdim=True))


def layoutlm_config_from_bert(bert_config: BertConfig) -> LayoutLMConfig:
    """A LayoutLM config with the BERT config's sizes, labels and dropout."""
    d = bert_config.to_dict()
    keep = set(LayoutLMConfig().to_dict())
    d = {k: v for k, v in d.items() if k in keep and k not in ("model_type", "architectures")}
    return LayoutLMConfig(**d, max_2d_position_embeddings=1024)


def layoutlm_from_bert(bert_state: dict[str, torch.Tensor], bert_config: BertConfig,
                       layout_init: str = "sinusoidal", seed: int = 0,
                       ) -> LayoutLMForTokenClassification:
    """A LayoutLM token classifier holding the BERT encoder weights ``bert_state``.

    ``bert_state`` is a ``BertModel`` state dict (keys ``embeddings.*``, ``encoder.*``...).
    The classifier head stays freshly initialised; the layout embeddings start as
    ``layout_init`` says (see the module docstring).
    """
    if layout_init not in LAYOUT_INITS:
        raise ValueError(f"layout_init must be one of {LAYOUT_INITS}, got {layout_init!r}")
    model = LayoutLMForTokenClassification(layoutlm_config_from_bert(bert_config))
    state = {k: v for k, v in bert_state.items() if not k.startswith("pooler.")}
    missing, unexpected = model.layoutlm.load_state_dict(state, strict=False)
    expected_missing = {f"embeddings.{n}.weight" for n in LAYOUT_EMBEDDINGS}
    bad = [k for k in missing if k not in expected_missing and not k.startswith("pooler.")]
    if bad or unexpected:
        raise ValueError(f"BERT weights do not fit LayoutLM: missing {bad}, "
                         f"unexpected {list(unexpected)}")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in LAYOUT_EMBEDDINGS:
            weight = getattr(model.layoutlm.embeddings, name).weight
            if layout_init == "zero":
                weight.zero_()
            else:
                weight.copy_(sinusoidal_table(weight.shape[0], weight.shape[1], gen))
    return model
