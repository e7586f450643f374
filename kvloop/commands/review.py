"""``kvloop review --store URL``: start the Streamlit correction UI (loopback by default).

``--model DIR`` extracts values from uploaded documents; ``--rerank REWARD_DIR`` (with
``--model``) reorders their k-best by a reward model first, exactly as ``kvloop extract
--rerank`` does (``extractor.model.predictor.load_predictor(..., rerank=...)``), so the stored
results' model version is ``<extractor version>+<reward version>``.

Security (``docs/review-ui-security.md``): the UI listens on 127.0.0.1 unless ``--host`` says
otherwise, and a non-loopback ``--host`` needs a team password (``--password-env VAR`` or
``--password-hash-file FILE``) or an explicit ``--allow-no-password`` (an authenticating proxy
in front). Only a salted hash of the password reaches the UI process; ``--operator-header``
takes the operator id from a header set by such a proxy.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import re
import sys
from pathlib import Path

PASSWORD_HASH_ENV = "KVLOOP_PASSWORD_HASH"
OPERATOR_HEADER_ENV = "KVLOOP_OPERATOR_HEADER"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from feedback_ui.ingest import MAX_UPLOAD_MB

    parser.add_argument("--store", default=None,
                        help="feedback store: SQLAlchemy URL or path of an SQLite file "
                             "(required, except with --hash-password)")
    parser.add_argument("--model", default=None,
                        help="model folder: extracts values from uploaded documents, and its "
                             "kvloop.json's fitted auto-accept thresholds route the queue "
                             "(without it, or without them: the schema's auto_accept)")
    parser.add_argument("--rerank", metavar="REWARD_DIR", default=None,
                        help="reward model (`kvloop train reward`) that reorders each field's "
                             "k-best of uploaded documents before they are queued (needs "
                             "--model; confidence stays the extractor's)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; any other "
                             "needs a password or --allow-no-password)")
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
    parser.add_argument("--max-upload-mb", type=int, default=MAX_UPLOAD_MB,
                        help="largest uploaded file, in MB (bigger ones are refused unread)")
    sec = parser.add_argument_group("access (docs/review-ui-security.md)")
    sec.add_argument("--password-env", metavar="VAR", default=None,
                     help="ask every browser session for the team password held in the "
                          "environment variable VAR (never give it on the command line)")
    sec.add_argument("--password-hash-file", metavar="FILE", default=None,
                     help="the same, with the password's hash (from --hash-password) in FILE")
    sec.add_argument("--hash-password", action="store_true",
                     help="read a password (from the terminal, or one line of stdin), print "
                          "its salted hash for --password-hash-file, and exit")
    sec.add_argument("--operator-header", metavar="HEADER", default=None,
                     help="take the operator id from this request header, set by an "
                          "authenticating reverse proxy (e.g. X-Forwarded-User), instead of "
                          "the name typed in the sidebar; safe only when the proxy is the one "
                          "way to reach the UI")
    sec.add_argument("--allow-no-password", action="store_true",
                     help="serve a non-loopback --host without a password (an authenticating "
                          "proxy in front checks who comes in)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def access_env(args: argparse.Namespace) -> dict[str, str]:
    """The UI's access settings (password hash, operator header) from ``args``.

    Reads the password variable or hash file; ``ValueError`` names the option and the problem.
    """
    from feedback_ui.checks import hash_password, parse_password_hash

    env: dict[str, str] = {}
    if args.password_env and args.password_hash_file:
        raise ValueError("give --password-env or --password-hash-file, not both")
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise ValueError(f"--password-env {args.password_env}: the environment variable "
                             f"{args.password_env} is not set or empty")
        try:
            env[PASSWORD_HASH_ENV] = hash_password(password)
        except ValueError as e:
            raise ValueError(f"--password-env {args.password_env}: {e}") from None
    elif args.password_hash_file:
        path = Path(args.password_hash_file)
        try:
            encoded = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--password-hash-file {path}: cannot read it ({e})") from None
        try:
            parse_password_hash(encoded)
        except ValueError as e:
            raise ValueError(f"--password-hash-file {path}: {e}") from None
        env[PASSWORD_HASH_ENV] = encoded
    if args.operator_header:
        if not re.fullmatch(r"[A-Za-z0-9-]+", args.operator_header):
            raise ValueError(f"--operator-header {args.operator_header!r}: not an HTTP header "
                             "name (letters, digits and '-')")
        env[OPERATOR_HEADER_ENV] = args.operator_header
    if not is_loopback(args.host) and PASSWORD_HASH_ENV not in env and not args.allow_no_password:
        raise ValueError(f"--host {args.host} serves the UI beyond this machine, and no password "
                         "is set: give --password-env VAR (or --password-hash-file FILE), or put "
                         "it behind an authenticating proxy (docs/review-ui-security.md) and "
                         "pass --allow-no-password")
    return env


def streamlit_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` command line and environment for ``args``.

    Its only reads are the password variable or hash file (``access_env``); the password
    itself is left out of the environment handed on (the UI gets its salted hash).
    """
    from feedback_ui.store.engine import normalize_url

    url = normalize_url(args.store)
    upload_dir = args.upload_dir
    if upload_dir is None:
        db = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
        upload_dir = str(Path(db).parent / "uploads") if db else str(Path("kvloop-uploads"))
    env = dict(os.environ, KVLOOP_STORE=url, KVLOOP_AUDIT_RATE=str(args.audit_rate),
               KVLOOP_AUDIT_SEED=str(args.audit_seed), KVLOOP_DATASET=args.dataset,
               KVLOOP_LEASE_S=str(args.lease_minutes * 60),
               KVLOOP_UPLOAD_DIR=str(Path(upload_dir).resolve()),
               KVLOOP_MAX_UPLOAD_MB=str(args.max_upload_mb))
    # Settings of an earlier run in this environment must not leak into this one.
    for name in (PASSWORD_HASH_ENV, OPERATOR_HEADER_ENV, args.password_env):
        if name:
            env.pop(name, None)
    env.update(access_env(args))
    if args.model:
        env["KVLOOP_MODEL"] = str(Path(args.model).resolve())
    if args.rerank:
        env["KVLOOP_RERANK"] = str(Path(args.rerank).resolve())
    app = Path(__file__).resolve().parents[2] / "feedback_ui" / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app),
           "--server.address", args.host, "--server.port", str(args.port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none",
           # Stated, not left to a config.toml that could turn them off.
           "--server.enableXsrfProtection", "true", "--server.enableCORS", "true",
           "--server.maxUploadSize", str(args.max_upload_mb),
           # Tracebacks and exception messages go to this terminal, not to operators.
           "--client.showErrorDetails", "none",
           # Operators get no developer menu ("Deploy", rerun, clear cache).
           "--client.toolbarMode", "minimal",
           # The app gives each text box its draft's text both as the box's default and, when
           # an answer button changes it, through session state (feedback_ui/app.py edit_key).
           "--global.disableWidgetStateDuplicationWarning", "true"]
    return cmd, env


def shown_url(url: str) -> str:
    """``url`` with its password (if any) masked, for printing."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def read_new_password() -> str:
    """A password typed twice at the terminal, or the first line of a piped stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Team password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def print_password_hash() -> int:
    from feedback_ui.checks import hash_password

    try:
        print(hash_password(read_new_password()))
    except ValueError as e:
        print(f"kvloop review --hash-password: {e}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    if args.hash_password:
        return print_password_hash()
    if not args.store:
        print("kvloop review: --store is required", file=sys.stderr)
        return 2
    if not 0.0 <= args.audit_rate <= 1.0:
        print(f"kvloop review: --audit-rate must be in [0, 1], got {args.audit_rate}",
              file=sys.stderr)
        return 2
    if args.lease_minutes <= 0:
        print("kvloop review: --lease-minutes must be positive", file=sys.stderr)
        return 2
    if args.max_upload_mb <= 0:
        print("kvloop review: --max-upload-mb must be positive", file=sys.stderr)
        return 2
    if args.model and not Path(args.model).is_dir():
        print(f"kvloop review: model folder {args.model} does not exist", file=sys.stderr)
        return 2
    if args.rerank and not args.model:
        print("kvloop review: --rerank needs --model (the extractor whose k-best it reorders)",
              file=sys.stderr)
        return 2
    try:  # before the slower checks: a bad password option fails first
        cmd, env = streamlit_command(args)
    except ValueError as e:
        print(f"kvloop review: {e}", file=sys.stderr)
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
        print(f"kvloop review: cannot open store {shown_url(str(args.store))}: {e}",
              file=sys.stderr)
        return 1
    access = ("team password" if PASSWORD_HASH_ENV in env else "no password") + (
        f", operator from header {args.operator_header}" if args.operator_header else "")
    print(f"kvloop review: http://{args.host}:{args.port}  (store {shown_url(env['KVLOOP_STORE'])}"
          f"; {access}; auto-accept thresholds: "
          f"{'fitted with the model' if fitted else 'schema defaults'}"
          f"{'; uploads reranked by ' + args.rerank if args.rerank else ''})", flush=True)
    # Become the Streamlit server (no child process): a signal sent to `kvloop review` then
    # reaches the server itself, so stopping the command never leaves a server behind.
    os.execve(cmd[0], cmd, env)
    return 0  # not reached
