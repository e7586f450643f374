"""The main job on the embedded demo data: the whole loop, end to end, on one machine.

1. generate the synthetic receipts (rendered with PIL, then real tesseract OCR);
2. train the BERT + LayoutLM ensemble on the ``fit`` split, calibrate on ``calibration``;
3. extract k-best fields for the held-out ``dev`` documents;
4. write the evaluation report (HTML, JSON, Markdown) for them;
5. load documents and results into a SQLite feedback store and let a simulated operator review
   the queue the routing builds (accepting, picking alternatives or typing the true value, as a
   person would), so the store holds real corrections for the trainers;
6. tell the user how to open the correction UI on what was made.

Everything goes through the same APIs the subcommands use; nothing here is demo-only logic
except the simulated operator, who knows the gold values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from extractor.document import Document, ExtractionResult, write_jsonl
from extractor.splits import split_documents


@dataclass
class DemoConfig:
    """Settings of ``kvloop demo`` (defaults sized for a 2-core CPU: about 10 minutes)."""

    out: str = field(default="runs/demo", metadata={"help": "output directory"})
    n: int = field(default=120, metadata={"help": "synthetic documents to generate"})
    seed: int = field(default=0, metadata={"help": "seed for data, training and audit"})
    epochs: int = field(default=6, metadata={"help": "training epochs (early stopping on dev)"})
    arch: str = field(default="minilm", metadata={"help": "model architecture (zoo name)"})
    operator: str = field(default="demo-operator", metadata={"help": "simulated operator"})

    def __post_init__(self) -> None:
        if self.n < 10:
            raise ValueError(f"n must be >= 10 (a fifth of it is the dev split), got {self.n}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")


@dataclass
class DemoSummary:
    data_dir: Path
    model_dir: Path
    report: dict[str, str]
    store_url: str
    reviewed: int
    actions: Counter
    queued: int
    documents: int


def demo_documents(cfg: DemoConfig) -> list[Document]:
    """Generate the demo receipts under ``out/data`` (OCR results are cached across runs)."""
    from extractor.synth.demo import generate_demo, read_documents

    data_dir = Path(cfg.out) / "data"
    jsonl = data_dir / "documents.jsonl"
    report = read_documents(jsonl) if jsonl.is_file() else generate_demo(data_dir, n=cfg.n,
                                                                          seed=cfg.seed)
    if report.failures:
        print(report.summary())
    if not report.documents:
        raise RuntimeError(f"{data_dir}: the demo generator produced no documents")
    return report.documents


def train_model(cfg: DemoConfig, docs: list[Document]) -> Path:
    from training.supervised_config import SupervisedConfig
    from training.supervised_trainer import SupervisedTrainer

    out = Path(cfg.out) / "model"
    if (out / "kvloop.json").is_file():  # a finished version is never overwritten: reuse it
        print(f"      reusing the model already trained in {out} (delete it to retrain)")
        return out
    tcfg = SupervisedConfig(data=str(Path(cfg.out) / "data" / "documents.jsonl"), out=str(out),
                            epochs=cfg.epochs, seed=cfg.seed, arch=cfg.arch)
    trainer = SupervisedTrainer(tcfg, train_docs=split_documents(docs, "fit"),
                                dev_docs=split_documents(docs, "dev"),
                                calib_docs=split_documents(docs, "calibration"))
    trainer.train()
    return out


def simulated_choice(view, gold: str | None):
    """What an operator who knows the true value does with one field (the ``full`` operator,
    ``kvloop.compare.operator.full_choice``)."""
    from kvloop.compare.operator import full_choice

    return full_choice(view, gold)


def review_queue(store_url: str, docs: list[Document], results: list[ExtractionResult],
                 cfg: DemoConfig, schema) -> tuple[int, Counter, int]:
    """Load the store and let the simulated operator work through the routed queue."""
    from feedback_ui.routing import RoutingConfig
    from feedback_ui.service import ReviewService
    from feedback_ui.store import FeedbackStore
    from kvloop.compare.operator import OperatorConfig, SimulatedOperator

    store = FeedbackStore(store_url)
    try:
        service = ReviewService(store, schema, dataset="demo",
                                routing=RoutingConfig(audit_rate=0.1, seed=cfg.seed))
        service.add(docs, results)
        gold = {d.id: d.gold or {} for d in docs}
        queued = len(service.queue())
        operator = SimulatedOperator(OperatorConfig("full", seed=cfg.seed))
        log = operator.review_queue(service, gold, cfg.operator)
        return log.reviewed, log.actions, queued
    finally:
        store.close()


def run_demo(cfg: DemoConfig) -> DemoSummary:
    from eval.run import EvalConfig, run_eval
    from extractor.model.predictor import load_predictor

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/5] demo data: {cfg.n} synthetic receipts (rendered, then tesseract OCR)")
    docs = demo_documents(cfg)
    print(f"[2/5] training the BERT + LayoutLM ensemble on {len(split_documents(docs, 'fit'))} "
          f"documents ({cfg.epochs} epochs at most)")
    model_dir = train_model(cfg, docs)
    dev = split_documents(docs, "dev")
    print(f"[3/5] extracting fields from {len(dev)} held-out documents")
    predictor = load_predictor(model_dir)
    results = predictor.predict(dev)
    results_path = out / "results-dev.jsonl"
    write_jsonl(str(results_path), results)
    print("[4/5] evaluation report")
    ev = run_eval(EvalConfig(data=str(out / "data" / "documents.jsonl"), out=str(out / "report"),
                             results=[str(results_path)], split="dev", seed=cfg.seed),
                  command=f"kvloop demo --out {cfg.out}")
    store_url = f"sqlite:///{(out / 'feedback.db').resolve()}"
    print("[5/5] feedback store and simulated review of the routed queue")
    reviewed, actions, queued = review_queue(store_url, dev, results, cfg, predictor.schema)
    return DemoSummary(data_dir=out / "data", model_dir=model_dir, report=ev["paths"],
                       store_url=store_url, reviewed=reviewed, actions=actions, queued=queued,
                       documents=len(dev))
