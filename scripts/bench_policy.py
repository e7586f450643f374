"""Benchmark the batched policy against per-(document, field) calls; prints Markdown, writes JSON.

What a trainer step does, both ways, on the same documents and outcomes: the log-probs of
4 fields x 5 outcomes (drawn once, seeded, from the model's own span categorical) on every
document of a split, differentiable, then one backward of their sum, in chunks of
``--chunk`` documents (a trainer's batch):

* ``per-field``: ``KVEnsemble.log_probs(doc, field, outcomes)``, one encoder forward per
  (document, field), as trainers would have called it before ``BatchedPolicy``;
* ``batched``: ``BatchedPolicy.log_probs(docs, queries)``, one length-bucketed forward for
  all documents of the chunk.

Each runs in its own fresh process (``--only``), so the peak resident memory
(``ru_maxrss``) is that method's; the log-probs of both are compared in the parent (max
absolute difference). Dropout is off in both (the forwards trainers use for ratios).

    python scripts/bench_policy.py --model runs/base --data /work/shared/data/sroie --split dev
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractor.document import Document
from extractor.loaders import load_documents
from extractor.model.ensemble import KVEnsemble
from extractor.model.policy import BatchedPolicy, FieldOutcomes
from extractor.model.zoo import build_model

FIELDS = ("company", "date", "address", "total")


def load_model(args: argparse.Namespace) -> KVEnsemble:
    if args.model:
        return KVEnsemble.from_pretrained(args.model)[0]
    return build_model(args.arch, seed=0)


def outcomes_for(model: KVEnsemble, docs: list[Document], k: int, seed: int
                 ) -> list[FieldOutcomes]:
    """``k`` outcomes per (document, field), drawn from the model (not timed)."""
    gen = torch.Generator().manual_seed(seed)
    policy = BatchedPolicy(model)
    queries = []
    for start in range(0, len(docs), 16):
        chunk = list(range(start, min(start + 16, len(docs))))
        samples = policy.sample([docs[i] for i in chunk], [(j, f) for j in range(len(chunk))
                                                          for f in FIELDS], k, gen)
        queries += [FieldOutcomes(chunk[s.doc], s.field, s.outcomes) for s in samples]
    return queries


def run_method(method: str, model: KVEnsemble, docs: list[Document],
               queries: list[FieldOutcomes], chunk: int) -> tuple[float, list[torch.Tensor]]:
    """Seconds for forward + backward over all chunks, and the log-probs (detached)."""
    model.eval()  # dropout off; gradients still flow
    policy = BatchedPolicy(model)
    by_doc: dict[int, list[FieldOutcomes]] = {}
    for q in queries:
        by_doc.setdefault(q.doc, []).append(q)
    out: list[torch.Tensor] = []
    t0 = time.perf_counter()
    for start in range(0, len(docs), chunk):
        ids = list(range(start, min(start + chunk, len(docs))))
        model.zero_grad(set_to_none=True)
        if method == "batched":
            local = [FieldOutcomes(q.doc - start, q.field, q.outcomes)
                     for i in ids for q in by_doc[i]]
            lps = policy.log_probs([docs[i] for i in ids], local)
        else:
            lps = [model.log_probs(docs[q.doc], q.field, q.outcomes)
                   for i in ids for q in by_doc[i]]
        torch.stack([lp.sum() for lp in lps]).sum().backward()
        out += [lp.detach() for lp in lps]
    return time.perf_counter() - t0, out


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    docs = load_documents(args.data, split=args.split, progress=False).documents[:args.max_docs]
    model = load_model(args)
    queries = outcomes_for(model, docs, args.k, args.seed)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, lps = run_method(args.only, model, docs, queries, args.chunk)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.save({"seconds": seconds, "lps": lps, "peak_kb": peak, "base_kb": base_rss,
                "n_docs": len(docs), "n_queries": len(queries)}, args.result)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="saved model directory (default: fresh --arch weights)")
    ap.add_argument("--arch", default="minilm")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" /
                                          "data" / "sroie"))
    ap.add_argument("--split", default="dev")
    ap.add_argument("--max-docs", type=int, default=100)
    ap.add_argument("--k", type=int, default=5, help="outcomes per (document, field)")
    ap.add_argument("--chunk", type=int, default=8, help="documents per step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-policy.json")
    ap.add_argument("--only", choices=("batched", "per-field"), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.only:
        child(args)
        return 0
    rows: dict[str, dict[str, Any]] = {}
    got: dict[str, list[torch.Tensor]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("per-field", "batched"):
            res = Path(tmp) / f"{method}.pt"
            cmd = [sys.executable, __file__, "--only", method, "--result", str(res)] + [
                a for a in (argv if argv is not None else sys.argv[1:])]
            subprocess.run(cmd, check=True)
            r = torch.load(res, weights_only=True)
            got[method] = r["lps"]
            rows[method] = {"seconds": round(r["seconds"], 2),
                            "peak_rss_mb": round(r["peak_kb"] / 1024, 1),
                            "extra_rss_mb": round((r["peak_kb"] - r["base_kb"]) / 1024, 1),
                            "n_docs": r["n_docs"], "n_queries": r["n_queries"]}
    diff = max(float((a - b).abs().max()) for a, b in zip(got["per-field"], got["batched"]))
    # float32 log-probs of tens of nats: padding changes the reduction order, so compare
    # relative to the value's size as well.
    rel = max(float(((a - b).abs() / b.abs().clamp(min=1.0)).max())
              for a, b in zip(got["per-field"], got["batched"]))
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
                         f"torch {torch.__version__}",
              "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "model": args.model or f"fresh {args.arch}", "split": args.split,
              "chunk": args.chunk, "k": args.k, "max_abs_diff": diff, "max_rel_diff": rel,
              "rows": rows,
              "speedup": round(rows["per-field"]["seconds"] / rows["batched"]["seconds"], 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print("| method | seconds | peak RSS (MB) | RSS over loaded model (MB) |\n|---|---:|---:|---:|")
    for m, r in rows.items():
        print(f"| {m} | {r['seconds']} | {r['peak_rss_mb']} | {r['extra_rss_mb']} |")
    print(f"\n{rows['batched']['n_docs']} documents, {rows['batched']['n_queries']} (document, "
          f"field) queries x {args.k} outcomes, chunks of {args.chunk}; batched x"
          f"{report['speedup']} faster; max |difference| {diff:.2e} (relative {rel:.2e}); "
          f"wrote {args.out}")
    return 0 if rel < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
