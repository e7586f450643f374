"""The review UI under hostile input: markup in values, names and operator ids, crafted
uploads, and who may act (loopback binding, the team password, the proxy's operator header).

AppTest drives the real app over a real SQLite store; the slow tests run real tesseract with a
tiny model, or ``kvloop review`` in a real browser (Debian's chromium via Playwright).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bad_inputs import png_header
from streamlit.testing.v1 import AppTest
from test_service import receipt, receipt_png
from test_ui_apptest import box, click, heading, shown, start, status, tiny_model_dir  # noqa: F401

from extractor.document import Candidate, Document, ExtractionResult, FieldResult, Word
from feedback_ui.browser_scripts import KEY_GUARD_JS, focus_script
from feedback_ui.checks import (
    MAX_OPERATOR_CHARS,
    hash_password,
    operator_id,
    parse_password_hash,
    password_matches,
)
from feedback_ui.imaging import MAX_PIXELS, pixel_problem
from feedback_ui.ingest import keep_upload, safe_stem, shown_name
from feedback_ui.store import FeedbackStore
from kvloop.commands import review

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
SQL = "ann'); DROP TABLE saves; --"
PASSWORD = "correct horse battery"
RAW_TAG = re.compile(r"<\s*(script|img)\b", re.IGNORECASE)
# Fields that hold values, not markup: a text box's content, a select box's plain-text options.
VALUE_FIELDS = {("text_input", "value"), ("text_input", "default"), ("selectbox", "options"),
                ("selectbox", "raw_values"), ("selectbox", "default")}


# -- builders (a decompression bomb's header: ``bad_inputs.png_header``) -----------------------

def hostile_receipt() -> tuple[Document, ExtractionResult]:
    """Markup in the document id, its words, every field's values and the model version."""
    words = [Word(SCRIPT, (10, 10, 80, 30)), Word(IMG, (90, 10, 150, 30)),
             Word("TOTAL", (10, 70, 70, 90)), Word("9.00", (100, 70, 150, 90))]
    doc = Document(id=f"doc{IMG}", words=words, width=200, height=300)
    res = ExtractionResult(doc.id, f"m1{SCRIPT}", {
        "company": FieldResult("company", [Candidate(SCRIPT, 0.3, [0]),
                                           Candidate(IMG, 0.2, [1])], 0.3),
        "date": FieldResult("date", [Candidate("01/02/2018", 0.99, [])], 0.99),
        "address": FieldResult("address", [Candidate(f"{IMG} & <b>co</b>", 0.5, [1])], 0.5),
        "total": FieldResult("total", [Candidate(f"7.{IMG}", 0.4, [3])], 0.4),
    }, doc_hash=doc.content_hash())
    return doc, res


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    monkeypatch.setenv("KVLOOP_STORE", url)
    monkeypatch.setenv("KVLOOP_AUDIT_RATE", "0")
    for name in ("KVLOOP_PASSWORD_HASH", "KVLOOP_OPERATOR_HEADER", "KVLOOP_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return url


@pytest.fixture
def receipts(store_url: str) -> Iterator[FeedbackStore]:
    s = FeedbackStore(store_url)
    pairs = [receipt(1, 0.9), receipt(2, 0.3), receipt(4, 0.6)]
    s.add_batch([d for d, _ in pairs], [r for _, r in pairs])
    yield s
    s.close()


def proto_strings(msg: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, text) of every string inside a protobuf message."""
    for fd, value in msg.ListFields():
        values = list(value) if type(value).__name__.startswith("Repeated") else [value]
        for v in values:
            if isinstance(v, str):
                yield path + fd.name, v
            elif hasattr(v, "ListFields"):
                yield from proto_strings(v, f"{path}{fd.name}.")


def rendered(at: AppTest) -> list[tuple[str, str, str]]:
    """(element type, field, text) of every string the page sends the browser as markup:
    markdown, captions, alerts, toasts, headings, labels, button labels, help, HTML."""
    out = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is None or not hasattr(proto, "ListFields"):
            continue
        kind = getattr(node, "type", type(node).__name__)
        out += [(kind, f, text) for f, text in proto_strings(proto)
                if (kind, f) not in VALUE_FIELDS]
    return out


def app_script(kind: str, field: str, text: str) -> bool:
    """The app's own scripts (the key guard, the focus mover): constant code that names only
    schema field names, never a document's or an operator's text."""
    if (kind, field) != ("iframe", "srcdoc"):
        return False
    focus = re.fullmatch(r"<script>/\* (\d+) \*/.*?JSON\.stringify\(\"(\w+ value)\"\).*",
                         text, re.DOTALL)
    return text == KEY_GUARD_JS or (
        focus is not None and text == focus_script(focus.group(2), int(focus.group(1))))


def assert_no_raw_markup(at: AppTest) -> list[tuple[str, str, str]]:
    found = rendered(at)
    raw = [x for x in found if RAW_TAG.search(x[2]) and not app_script(*x)]
    assert not raw, raw
    return found


def escaped_in(found: list[tuple[str, str, str]], kind: str, needle: str) -> list[str]:
    return [text for k, _, text in found if k == kind and needle in text]


# -- operator ids and the password ---------------------------------------------------------

def test_operator_ids_are_checked_not_defaulted() -> None:
    assert operator_id("  ann   lee ") == "ann lee"
    assert operator_id(SQL) == SQL and operator_id(IMG) == IMG  # shown escaped, stored as is
    for bad, why in [("", "empty"), ("   ", "empty"), (None, "empty"),
                     ("a" * (MAX_OPERATOR_CHARS + 1), "at most 64"),
                     ("ann\x00", "U+0000"), ("ann\u202eeve", "U+202E"), ("a\u200bb", "U+200B")]:
        with pytest.raises(ValueError, match=re.escape(why)):
            operator_id(bad)


def test_password_hash_is_salted_and_checked() -> None:
    a, b = hash_password(PASSWORD, iterations=1000), hash_password(PASSWORD, iterations=1000)
    assert a != b and PASSWORD not in a  # salted; the password is not in it
    assert password_matches(PASSWORD, a) and password_matches(PASSWORD, b)
    assert not password_matches(PASSWORD + " ", a) and not password_matches("", a)
    assert parse_password_hash(a)[0] == 1000
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")
    for bad in ["", PASSWORD, "pbkdf2_sha256$x$AAAA$AAAA", "md5$1$AAAA$AAAA", a + "$extra"]:
        with pytest.raises(ValueError, match="not a kvloop password hash"):
            parse_password_hash(bad)


# -- escaping: AppTest over hostile values ----------------------------------------------------

def test_hostile_values_are_escaped_wherever_they_are_shown(store_url: str) -> None:
    store = FeedbackStore(store_url)
    doc, res = hostile_receipt()
    other, other_res = receipt(5, 0.5)
    store.add_batch([doc, other], [res, other_res])
    store.acquire_lease(other.id, SCRIPT)  # held by an operator whose id is markup
    at = start(operator=IMG)
    found = assert_no_raw_markup(at)
    assert heading(at).startswith("#### doc&lt;img src=x onerror=alert\\(2\\)&gt; · model "
                                  "m1&lt;script&gt;alert\\(1\\)&lt;/script&gt;")
    assert shown(heading(at)).startswith(f"#### {doc.id} · model {res.model_version}")
    labels = escaped_in(found, "button", "&lt;script&gt;alert")
    assert [shown(x) for x in labels] == [f"1: {SCRIPT} (0.30)"]
    assert shown(at.button(key="pick::address::0").label) == f"1: {IMG} & <b>co</b> (0.50)"
    problem = escaped_in(found, "caption", "is not an amount")
    assert problem and "&lt;img" in problem[0]  # the validation message quotes the value
    # What the boxes hold is the raw value (a text box shows it as text).
    assert box(at, "company").value == SCRIPT

    at.button(key="pick::company::1").click().run()
    box(at, "total").input("9.00").run()
    click(at, "Save and next")
    assert shown(status(at)) == f"✓ Saved {doc.id}."
    assert "&lt;img" in status(at)
    # The other document is locked by SCRIPT: the refusal names them, escaped.
    at.sidebar.text_input(key="goto").input(other.id).run()
    found = assert_no_raw_markup(at)
    assert f"being reviewed by '{SCRIPT}'" in shown(at.error[0].value)
    # Reopened, the field says who reviewed it; Stats and History name operators and ids.
    at.sidebar.text_input(key="goto").input(doc.id).run()
    found = assert_no_raw_markup(at)
    company = next(m.value for m in at.markdown if m.value.startswith("**company**"))
    assert f"by {IMG}" in shown(company) and "by &lt;img" in company
    at.sidebar.radio(key="page").set_value("Stats").run()
    found = assert_no_raw_markup(at)
    assert any(f"Saves today per operator: {IMG}: 1" in shown(c.value) for c in at.caption)
    at.sidebar.radio(key="page").set_value("History").run()
    at.text_input(key="hist_doc").input(SCRIPT).run()
    assert_no_raw_markup(at)
    assert shown(at.info[0].value) == f"No review recorded for {SCRIPT!r}."
    at.sidebar.radio(key="page").set_value("Queue").run()
    assert_no_raw_markup(at)
    # Stored exactly as given (SQL parameters, no escaping in the data).
    assert store.current_values(doc.id)["company"] == IMG
    assert {s.operator for s in store.saves(doc.id)} == {IMG}
    store.close()


# -- who acts: the operator on every action, undo included ----------------------------------

def test_every_action_records_the_identified_operator(receipts: FeedbackStore) -> None:
    store = receipts
    at = start(operator=f"  {SQL}  ")  # stripped; the SQL stays a value
    assert heading(at).startswith("#### rcpt2") and store.lease_of("rcpt2").operator == SQL
    click(at, "Save and next")
    assert heading(at).startswith("#### rcpt4")
    click(at, "Skip")
    assert heading(at).startswith("#### rcpt1")
    click(at, "Undo last save")  # reopens rcpt2; rcpt1 is given back
    assert heading(at).startswith("#### rcpt2")
    # Another name in the same browser: the open document is given back as SQL, then all
    # actions are the new name's.
    at.sidebar.text_input(key="operator").input(IMG).run()
    assert store.lease_of("rcpt2").operator == IMG  # the queue's first, opened again as IMG
    click(at, "Accept all and next")
    saves = [(s.doc_id, s.kind, s.operator) for s in store.saves()]
    assert saves == [("rcpt2", "review", SQL), ("rcpt2", "undo", SQL), ("rcpt2", "review", IMG)]
    events = {(e.doc_id, e.event, e.operator) for d in ("rcpt1", "rcpt2", "rcpt4")
              for e in store.lease_history(d)}
    assert {e[2] for e in events} == {SQL, IMG}
    assert ("rcpt4", "release", SQL) in events and ("rcpt1", "release", SQL) in events
    assert ("rcpt2", "release", SQL) in events and ("rcpt2", "acquire", IMG) in events
    assert {h.operator for h in store.history("rcpt2")} == {SQL, IMG}


@pytest.mark.parametrize(("name", "why"), [("ann\u202eeve", "U+202E"),
                                          ("x" * 65, "65 characters long")])
def test_a_bad_operator_id_opens_nothing(receipts: FeedbackStore, name: str, why: str) -> None:
    at = start(operator=name)
    assert why in shown(at.sidebar.error[0].value)
    assert "Fix your operator name" in at.info[0].value
    assert not [m for m in at.markdown if m.value.startswith("####")]
    assert all(receipts.lease_of(d) is None for d in receipts.document_ids())


def test_operator_header_mode_without_the_header_opens_nothing(
        receipts: FeedbackStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVLOOP_OPERATOR_HEADER", "X-Forwarded-User")
    at = start(operator=None)
    assert not at.exception
    assert not [t for t in at.sidebar.text_input if t.key == "operator"]  # nothing to type
    assert "X-Forwarded-User header" in shown(at.error[0].value)
    assert all(receipts.lease_of(d) is None for d in receipts.document_ids())


# -- the team password ---------------------------------------------------------------------

def sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="password").input(password)
    return click(at, "Sign in")


def test_password_gates_the_whole_ui(receipts: FeedbackStore,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVLOOP_PASSWORD_HASH", hash_password(PASSWORD, iterations=1000))
    at = start(operator=None)
    # Signed out: the sign-in form and nothing else (no operator box, no queue, no page).
    assert [t.key for t in at.text_input] == ["password"]
    assert not at.sidebar.children and not at.markdown
    sign_in(at, "wrong password")
    assert shown(at.error[0].value) == "Wrong password."
    assert [t.key for t in at.text_input] == ["password"]
    assert at.text_input(key="password").value == ""  # not kept, not echoed
    sign_in(at, PASSWORD)
    assert at.session_state["password"] == ""  # checked, then dropped
    assert not any(PASSWORD in text for _, _, text in rendered(at))
    at.sidebar.text_input(key="operator").input("ann").run()
    assert heading(at).startswith("#### rcpt2")
    click(at, "Sign out")
    assert [t.key for t in at.text_input] == ["password"]
    assert receipts.lease_of("rcpt2") is None  # the document is given back


# -- uploads ---------------------------------------------------------------------------------

HOSTILE_NAMES = ["../../etc/x.jpg", "/etc/passwd.png", "..\\..\\win.ini.png", "a\x00b.png",
                 "x" * 5000 + ".png", ".hidden.png", f"{IMG}.png", "\u6536\u636e.png",
                 "....png", "C:\\Users\\ann\\scan.tif"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_upload_names_cannot_leave_the_upload_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "uploads"
    path = keep_upload(folder, name, b"some bytes")
    assert path.parent == folder and path.resolve().parent == folder.resolve()
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", path.name) and not path.name.startswith(".")
    assert len(path.stem) <= 60 + 1 + 16
    assert path.read_bytes() == b"some bytes"
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left
    assert len(shown_name(name)) <= 120 and "\x00" not in shown_name(name)
    assert not (tmp_path / "etc").exists()


def test_uploads_never_overwrite_each_other(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    a = keep_upload(folder, "scan.jpg", b"first scan")
    b = keep_upload(folder, "scan.jpg", b"second scan")
    assert a != b and a.read_bytes() == b"first scan" and b.read_bytes() == b"second scan"
    assert keep_upload(folder, "scan.jpg", b"first scan") == a  # same file: same document
    # A kept file already under the name another upload would get (a hash-prefix collision,
    # or any file put there) is left alone; the upload takes the next free name.
    target = folder / f"{safe_stem('x.png')}-{a.stem.rsplit('-', 1)[1]}.png"
    target.write_bytes(b"not these bytes")
    c = keep_upload(folder, "x.png", b"first scan")
    assert c.name == target.name.replace(".png", "-1.png") and c.read_bytes() == b"first scan"
    assert target.read_bytes() == b"not these bytes"


def test_headers_are_checked_before_decoding() -> None:
    import pymupdf
    from PIL import Image

    bomb = pixel_problem(png_header(100_000, 100_000), ".png")
    assert bomb and "not decoded" in bomb and "10,000.0 megapixels" in bomb
    big = pixel_problem(png_header(10_000, 10_000), ".png")  # under PIL's own error limit
    assert big == ("image is 10,000 x 10,000 pixels (100.0 megapixels), over the "
                   "80-megapixel limit; not decoded (a decompression bomb?)")
    assert 10_000 * 10_000 > MAX_PIXELS > 8_000 * 10_000 - 1
    assert pixel_problem(png_header(8_000, 10_000), ".png") is None  # at the limit: fine
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "white").save(buf, "TIFF")
    assert pixel_problem(buf.getvalue(), ".tif") is None
    assert pixel_problem(b"plain text named .jpg", ".jpg") is None  # the loader says why
    # Formats are told by content: an EPS (a Ghostscript program) named .jpg is not decoded.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    assert pixel_problem(eps, ".jpg").startswith("the file holds EPS data, not one of")
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "white").save(buf, "PCX")
    assert "holds PCX data" in pixel_problem(buf.getvalue(), ".png")
    huge = pymupdf.open()
    huge.new_page(width=14_400, height=14_400)  # 200 x 200 inches, rendered at 200 dpi
    assert "page 1 is 40,000 x 40,000 pixels at 200 dpi" in pixel_problem(huge.tobytes(), ".pdf")
    locked = pymupdf.open()
    locked.new_page()
    data = locked.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")
    assert "encrypted" in pixel_problem(data, ".pdf")
    many = pymupdf.open()
    for _ in range(51):
        many.new_page()
    assert pixel_problem(many.tobytes(), ".pdf") == "the PDF has 51 pages; at most 50 per upload"


@pytest.mark.slow
def test_upload_page_refuses_crafted_files_and_keeps_same_named_ones(
        store_url: str, tiny_model_dir: Path, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVLOOP_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("KVLOOP_UPLOAD_DIR", str(tmp_path / "uploads"))
    monkeypatch.setenv("KVLOOP_MAX_UPLOAD_MB", "1")
    store = FeedbackStore(store_url)
    at = start()
    at.sidebar.radio(key="page").set_value("Upload").run()
    uploader = at.get("file_uploader")[0]
    first = receipt_png(["KEDAI MAJU SDN BHD", "TOTAL 8.90"])
    second = receipt_png(["SYARIKAT BARU", "TOTAL 3.10"])
    uploader.upload("scan.png", first, "image/png")
    uploader.upload("scan.png", second, "image/png")
    uploader.upload("../../etc/x.png", first, "image/png")  # same bytes as scan.png
    uploader.upload("bomb.png", png_header(100_000, 100_000), "image/png")
    uploader.upload(f"{IMG}.png", os.urandom(1_200_000), "image/png")  # over 1 MB
    at.run()
    click(at, "Run OCR and extraction")
    assert_no_raw_markup(at)
    added = sorted(d for d in store.document_ids() if not d.startswith("rcpt"))
    # The same bytes under another name read to the same page: it is that document.
    assert len(added) == 2 and all(d.startswith("scan-") for d in added)
    assert any(shown(i.value).startswith("Already in the store: x-") and "(the same page as "
               "scan-" in shown(i.value) for i in at.info)
    errors = {shown(e.value).split(": ", 1)[0]: shown(e.value) for e in at.error}
    assert ("image is 100,000 x 100,000 pixels (10,000.0 megapixels), over the 80-megapixel "
            "limit; not decoded" in errors["bomb.png"])
    assert "the file is 1.1 MB, more than the 1 MB allowed" in errors[f"{IMG}.png"]
    assert any(e.value.startswith("&lt;img src=x onerror=alert\\(2\\)&gt;\\.png\\: ")
               for e in at.error)
    kept = sorted(p.name for p in (tmp_path / "uploads").iterdir())
    assert len(kept) == 3 and not any("bomb" in k or "img" in k for k in kept)
    assert not (tmp_path / "etc").exists()
    store.close()


# -- kvloop review: what it binds, what it hands the UI -----------------------------------

def args_of(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    review.add_arguments(p)
    return p.parse_args(list(argv))


def test_review_binds_loopback_and_states_its_protections(tmp_path: Path) -> None:
    cmd, env = review.streamlit_command(args_of("--store", str(tmp_path / "f.db")))
    opt = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    assert opt["--server.address"] == "127.0.0.1"
    assert opt["--server.enableXsrfProtection"] == "true" == opt["--server.enableCORS"]
    assert opt["--server.maxUploadSize"] == "50" == env["KVLOOP_MAX_UPLOAD_MB"]
    assert opt["--client.showErrorDetails"] == "none"
    assert "KVLOOP_PASSWORD_HASH" not in env and "KVLOOP_OPERATOR_HEADER" not in env


def test_review_refuses_an_open_network_bind_without_a_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "f.db")
    assert review.run(args_of("--store", db, "--host", "0.0.0.0")) == 2
    assert "--host 0.0.0.0 serves the UI beyond this machine" in capsys.readouterr().err
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        review.streamlit_command(args_of("--store", db, "--host", host))  # no error
    _, env = review.streamlit_command(args_of("--store", db, "--host", "0.0.0.0",
                                              "--allow-no-password"))
    assert "KVLOOP_PASSWORD_HASH" not in env


def test_review_hands_the_ui_a_hash_never_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "f.db")
    monkeypatch.setenv("TEAM_PW", PASSWORD)
    cmd, env = review.streamlit_command(args_of("--store", db, "--host", "0.0.0.0",
                                                "--password-env", "TEAM_PW"))
    assert password_matches(PASSWORD, env["KVLOOP_PASSWORD_HASH"])
    assert "TEAM_PW" not in env and not any(PASSWORD in v for v in [*env.values(), *cmd])
    # A hash file (what --hash-password prints) works the same; bad ones are named.
    hash_file = tmp_path / "pw.hash"
    hash_file.write_text(hash_password(PASSWORD, iterations=1000) + "\n")
    _, env = review.streamlit_command(args_of("--store", db, "--password-hash-file",
                                              str(hash_file)))
    assert password_matches(PASSWORD, env["KVLOOP_PASSWORD_HASH"])
    hash_file.write_text(PASSWORD)
    for argv, said in [(["--password-hash-file", str(hash_file)], "not a kvloop password hash"),
                       (["--password-hash-file", str(tmp_path / "no")], "cannot read it"),
                       (["--password-env", "NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE is not set"),
                       (["--operator-header", "X-User: evil"], "not an HTTP header name")]:
        assert review.run(args_of("--store", db, *argv)) == 2
        err = capsys.readouterr().err
        assert said in err and PASSWORD not in err
    monkeypatch.setenv("SHORT_PW", "abc")
    assert review.run(args_of("--store", db, "--password-env", "SHORT_PW")) == 2
    assert "at least 8" in capsys.readouterr().err


def test_hash_password_prints_a_hash_read_from_stdin(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert review.run(args_of("--hash-password")) == 0
    printed = capsys.readouterr().out.strip()
    assert password_matches(PASSWORD, printed) and PASSWORD not in printed


def test_review_prints_the_store_url_without_its_password() -> None:
    assert review.shown_url("postgresql+psycopg://kv:s3cret@db:5432/feedback") == (
        "postgresql+psycopg://kv:***@db:5432/feedback")
    assert review.shown_url("sqlite:////tmp/f.db") == "sqlite:////tmp/f.db"


# -- in a real browser -------------------------------------------------------------------------

SLOW_MS = 600_000  # a busy machine takes minutes to import the app; a long wait costs nothing

def outward_ip() -> str | None:
    """This machine's address on its default route (no packet is sent), if not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.255", 9))
        except OSError:
            return None
        ip = s.getsockname()[0]
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


@pytest.mark.slow
def test_markup_stays_text_in_a_real_browser(tmp_path: Path, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright
    from test_ui_browser import ARGS, CHROMIUM, review_server

    doc, res = hostile_receipt()
    dialogs: list[str] = []
    with review_server(tmp_path, [doc], [res]) as (base, store, _), sync_playwright() as p:
        ip = outward_ip()
        if ip:  # listening on loopback only: the machine's own network address is refused
            port = int(base.rsplit(":", 1)[1])
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((ip, port), timeout=5).close()
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        page.set_default_timeout(SLOW_MS)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(base)
        page.get_by_label("Operator name").fill(IMG)
        page.get_by_label("Operator name").press("Enter")
        expect(page.get_by_text(f"{doc.id} · model {res.model_version}", exact=False)
               ).to_be_visible(timeout=SLOW_MS)
        for shown_as in (page.get_by_role("button", name=f"1: {SCRIPT} (0.30)"),
                         page.get_by_role("button", name=f"1: {IMG} & <b>co</b> (0.50)"),
                         page.get_by_text(f"'7.{IMG}' is not an amount", exact=False)):
            expect(shown_as).to_be_visible(timeout=SLOW_MS)
        page.get_by_label("total value").fill("9.00")
        page.get_by_label("total value").press("Enter")
        page.get_by_role("button", name="Save and next").click()
        expect(page.get_by_text("Nothing left to review", exact=False)).to_be_visible(
            timeout=SLOW_MS)
        page.get_by_text("Stats", exact=True).click()
        expect(page.get_by_text(f"Saves today per operator: {IMG}: 1")).to_be_visible(
            timeout=SLOW_MS)
        page.wait_for_timeout(1000)  # an onerror or a script would have run by now
        page.screenshot(path=str(artifacts_dir / "review_ui_hostile_values.png"), full_page=True)
        injected = sum(f.locator("img[src='x'], script:has-text('alert(1)')").count()
                       for f in page.frames)
        browser.close()
    assert dialogs == [] and injected == 0
    assert [s.operator for s in store.saves(doc.id)] == [IMG]


@pytest.mark.slow
def test_password_and_proxy_header_in_a_real_browser(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright
    from test_ui_browser import ARGS, CHROMIUM, review_server

    pairs = [receipt(2, 0.3), receipt(4, 0.6)]
    env = dict(os.environ, TEAM_PW=PASSWORD)
    args = ("--password-env", "TEAM_PW", "--operator-header", "X-Forwarded-User")
    with review_server(tmp_path, [d for d, _ in pairs], [r for _, r in pairs], args, env
                       ) as (base, store, proc), sync_playwright() as p:
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert b"KVLOOP_PASSWORD_HASH=pbkdf2_sha256$" in environ
        assert PASSWORD.encode() not in environ and b"TEAM_PW" not in environ
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # What an authenticating proxy in front adds to every request, websocket included.
        context = browser.new_context(extra_http_headers={"X-Forwarded-User": "carol"})
        page = context.new_page()
        page.set_default_timeout(SLOW_MS)
        page.goto(base)
        password = page.get_by_label("Team password")
        password.fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Wrong password.")).to_be_visible(timeout=SLOW_MS)
        expect(page.get_by_label("Operator name")).to_have_count(0)
        password.fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Signed in as carol", exact=False)).to_be_visible(timeout=SLOW_MS)
        expect(page.get_by_text("rcpt2 · model", exact=False)).to_be_visible(timeout=SLOW_MS)
        page.get_by_role("button", name="Accept all and next").click()
        expect(page.get_by_text("rcpt4 · model", exact=False)).to_be_visible(timeout=SLOW_MS)
        assert PASSWORD not in page.url
        browser.close()
    log = (tmp_path / "streamlit.log").read_text()
    assert PASSWORD not in log and "team password, operator from header X-Forwarded-User" in log
    assert [(s.doc_id, s.operator) for s in store.saves()] == [("rcpt2", "carol")]
