"""``kvloop review --store URL``: start the Streamlit correction UI (loopback by default).

``--model DIR`` extracts values from uploaded documents; ``--rerank REWARD_DIR`` (with
``--model``) reorders their k-best by a reward model first, exactly as ``kvloop extract
--rerank`` does (``extractor.model.predictor.load_predictor(..., rerank=...)``), so the stored
results' model version is ``<extractor version>+<reward version>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True,
                        help="feedback store: SQLAlchemy URL or path of an SQLite file")
    parser.add_argument("--model", default=None,
                        help="model folder: extracts values from uploaded documents, and its "
                             "kvloop.json's fitted auto-accept thresholds route the queue "
                             "(without it, or without them: the schema's auto_accept)")
    parser.add_argument("--rerank", metavar="REWARD_DIR", default=None,
                        help="reward model (`kvloop train reward`) that reorders each field's "
                             "k-best of uploaded documents before they are queued (needs "
                             "--model; confidence stays the extractor's)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--audit-rate", type=float, default=0.05,
                        help="share of fully auto-accepted documents queued for audit")
    parser.add_argument("--audit-seed", type=int, default=0)
    parser.add_argument("--lease-minutes", type=float, default=15.0,
                        help="how long a document stays locked to an operator who went quiet")
    parser.add_argument("--dataset", default="default",
                        help="dataset name recorded with every review action")
    parser.add_argument("--upload-dir", default=None,
                        help="where uploaded files are kept (default: uploads/ beside an "
                             "SQLite store, else ./kvloop-uploads)")


def streamlit_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` command line and environment for ``args`` (no side effects)."""
    from feedback_ui.store.engine import normalize_url

    url = normalize_url(args.store)
    upload_dir = args.upload_dir
    if upload_dir is None:
        db = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
        upload_dir = str(Path(db).parent / "uploads") if db else str(Path("kvloop-uploads"))
    env = dict(os.environ, KVLOOP_STORE=url, KVLOOP_AUDIT_RATE=str(args.audit_rate),
               KVLOOP_AUDIT_SEED=str(args.audit_seed), KVLOOP_DATASET=args.dataset,
               KVLOOP_LEASE_S=str(args.lease_minutes * 60),
               KVLOOP_UPLOAD_DIR=str(Path(upload_dir).resolve()))
    if args.model:
        env["KVLOOP_MODEL"] = str(Path(args.model).resolve())
    if args.rerank:
        env["KVLOOP_RERANK"] = str(Path(args.rerank).resolve())
    app = Path(__file__).resolve().parents[2] / "feedback_ui" / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app),
           "--server.address", args.host, "--server.port", str(args.port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none",
           # Operators get no developer menu ("Deploy", rerun, clear cache).
           "--client.toolbarMode", "minimal"]
    return cmd, env


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.audit_rate <= 1.0:
        print(f"kvloop review: --audit-rate must be in [0, 1], got {args.audit_rate}",
              file=sys.stderr)
        return 2
    if args.lease_minutes <= 0:
        print("kvloop review: --lease-minutes must be positive", file=sys.stderr)
        return 2
    if args.model and not Path(args.model).is_dir():
        print(f"kvloop review: model folder {args.model} does not exist", file=sys.stderr)
        return 2
    if args.rerank and not args.model:
        print("kvloop review: --rerank needs --model (the extractor whose k-best it reorders)",
              file=sys.stderr)
        return 2
    from feedback_ui.service import schema_of_model, thresholds_of_model

    try:
        schema = schema_of_model(args.model)
        fitted = thresholds_of_model(args.model)
        if args.rerank:  # the UI loads it only at the first upload: fail now, naming it
            from extractor.model.predictor import check_reranker
            check_reranker(args.rerank, schema)
    except (OSError, ValueError) as e:
        print(f"kvloop review: {e}", file=sys.stderr)
        return 2
    # Open (and migrate) the store once here so a bad URL fails with a clear message now.
    from feedback_ui.store import FeedbackStore

    try:
        FeedbackStore(args.store).close()
    except Exception as e:  # noqa: BLE001 - any driver error becomes one clear line
        print(f"kvloop review: cannot open store {args.store}: {e}", file=sys.stderr)
        return 1
    cmd, env = streamlit_command(args)
    print(f"kvloop review: http://{args.host}:{args.port}  (store {env['KVLOOP_STORE']}; "
          f"auto-accept thresholds: {'fitted with the model' if fitted else 'schema defaults'}"
          f"{'; uploads reranked by ' + args.rerank if args.rerank else ''})", flush=True)
    # Become the Streamlit server (no child process): a signal sent to `kvloop review` then
    # reaches the server itself, so stopping the command never leaves a server behind.
    os.execve(cmd[0], cmd, env)
    return 0  # not reached
