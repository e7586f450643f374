"""The Streamlit correction UI: renders and handles callbacks, nothing else.

All logic (queue, leases, saving, undo, uploads) lives in ``feedback_ui.service`` and the
store. Run it with ``kvloop review --store URL``; the command passes its options as
environment variables (``KVLOOP_STORE``, ``KVLOOP_MODEL``, ``KVLOOP_RERANK``,
``KVLOOP_AUDIT_RATE``, ``KVLOOP_AUDIT_SEED``, ``KVLOOP_UPLOAD_DIR``, ``KVLOOP_DATASET``,
``KVLOOP_LEASE_S``, ``KVLOOP_MAX_UPLOAD_MB``, ``KVLOOP_PASSWORD_HASH``,
``KVLOOP_OPERATOR_HEADER``).

Access (docs/review-ui-security.md): with a password hash set, a browser session sees nothing
but the sign-in form until the password is given; every action is made as the operator the
session identified (``operator()``: the name typed in the sidebar, checked, or the header an
authenticating proxy sets), never a default. Every value from a document or the store is shown
through ``md_text`` (HTML-escaped, markdown-escaped); nothing from them reaches HTML unescaped.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
from typing import Any, Literal

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from extractor.document import Candidate
from feedback_ui import imaging
from feedback_ui.audit import acceptance_policy, straight_through_status
from feedback_ui.browser_scripts import KEY_GUARD_JS, focus_script
from feedback_ui.checks import operator_id, password_matches
from feedback_ui.draft import Draft, describe
from feedback_ui.ingest import MAX_UPLOAD_MB
from feedback_ui.routing import RoutingConfig
from feedback_ui.service import (
    FieldChoice,
    FieldView,
    InvalidValueError,
    QueueFilter,
    QueueSnapshot,
    ReviewService,
    ReviewTask,
    schema_of_model,
    thresholds_of_model,
)
from feedback_ui.store import FeedbackStore, StoreError

STATE_BADGE = {
    "auto_accepted": ":green-badge[auto-accepted]",
    "confirmed": ":blue-badge[confirmed]",
    "needs_review": ":orange-badge[needs review]",
    "failed_validation": ":red-badge[failed validation]",
}
ZOOMS = {"Page": 1.0, "Zoom 2x": 2.0, "Zoom 4x": 4.0}
RENDER_WIDTH = 700  # pixels; the browser scales the image to the column
JPEG_QUALITY = 85
MAX_ALTERNATIVES = 5  # candidate buttons per field (keys Alt+1-5)
# Characters Streamlit markdown would interpret (CommonMark punctuation, ``$`` maths, ``:``
# emoji and colour directives); ``<``, ``>`` and ``&`` are HTML-escaped first (``md_text``).
MARKDOWN_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+\-.!|~$:]")
# Alternatives wrapped over lines read (and compare) best left-aligned; Streamlit centres button
# labels. Keyed elements carry the class ``st-key-<key>`` (":" -> "-"); only style, so Streamlit
# puts it where it takes no room.
ALTERNATIVES_CSS = ('<style>[class*="st-key-pick--"] button [data-testid="stMarkdownContainer"] p'
                    " { text-align: left; } h4 { font-size: 1.1rem; overflow-wrap: anywhere; }"
                    "</style>")
# Answer keys for the field being edited hold Alt: they work inside a text box too, and no key
# typed into a value can press one. X is "this value is wrong", as in Prodigy (Streamlit
# reserves R and C).
REJECT_KEY = "Alt+X"
ABSENT_KEY = "Alt+N"
ACCEPT_KEY = "Alt+A"
SIGN_IN_DELAY_S = 1.0  # after a wrong password, under a lock shared by every session
ss = st.session_state


# -- cached resources (shared by every browser session; thread-safe) ------------------------

@st.cache_resource(show_spinner=False)
def get_service(url: str, audit_rate: float, seed: int, dataset: str, lease_s: float,
                model_dir: str | None) -> ReviewService:
    """One engine/sessionmaker per store URL; sessions are opened per action.

    The model's fitted auto-accept thresholds (if it has them) route the queue; where it has
    certified straight-through thresholds, they do, less the fields the audit revoked."""
    store = FeedbackStore(url)
    return ReviewService(store, schema_of_model(model_dir),
                         routing=RoutingConfig(audit_rate, seed), dataset=dataset,
                         lease_ttl_s=lease_s, thresholds=thresholds_of_model(model_dir),
                         acceptance=acceptance_policy(store, model_dir) if model_dir else None)


@st.cache_resource(show_spinner="Loading the model...")
def get_uploader(url: str, model_dir: str, upload_dir: str, rerank: str | None = None,
                 max_upload_mb: int = MAX_UPLOAD_MB) -> Any:
    """The model bundle (loaded once) wrapped for uploads: OCR, then extraction (reranked by
    the reward model in ``rerank`` when given); files over ``max_upload_mb`` are refused."""
    from feedback_ui.ingest import Uploader

    return Uploader.load(model_dir, upload_dir, rerank, max_bytes=max_upload_mb * 2**20)


@st.cache_resource(max_entries=64, show_spinner=False)
def page_with_boxes(doc_id: str, content_hash: str, boxes: tuple[tuple[str, tuple[int, ...]], ...],
                    active: str | None, window: tuple[int, int, int, int], _task: ReviewTask
                    ) -> imaging.EncodedImage:
    """The shown part of the page with field boxes, JPEG-encoded once (cached: reruns that do
    not change the drawing, e.g. typing in a text box, neither draw nor encode again)."""
    return imaging.EncodedImage.of(
        imaging.render(_task.doc, {k: list(v) for k, v in boxes}, active, window, RENDER_WIDTH),
        quality=JPEG_QUALITY)


def service() -> ReviewService:
    return get_service(os.environ.get("KVLOOP_STORE", "sqlite:///feedback.db"),
                       float(os.environ.get("KVLOOP_AUDIT_RATE", "0.05")),
                       int(os.environ.get("KVLOOP_AUDIT_SEED", "0")),
                       os.environ.get("KVLOOP_DATASET", "default"),
                       float(os.environ.get("KVLOOP_LEASE_S", "900")),
                       os.environ.get("KVLOOP_MODEL"))


# -- access: the team password and the operator's identity ----------------------------------

@st.cache_resource(show_spinner=False)
def sign_in_lock() -> threading.Lock:
    """One lock for every session's password check: with the pause after a wrong password it
    holds guessing to about one try a second for the whole server, however many sessions."""
    return threading.Lock()


def password_hash() -> str | None:
    return os.environ.get("KVLOOP_PASSWORD_HASH") or None


def signed_in() -> bool:
    """Whether this browser session may use the UI (always, when no password is set)."""
    return password_hash() is None or ss.get("signed_in") is True


def operator_header() -> str | None:
    return os.environ.get("KVLOOP_OPERATOR_HEADER") or None


def operator_problem() -> str | None:
    """Why this session has no operator id to act as (``None`` when it has one)."""
    try:
        operator()
    except ValueError as e:
        return str(e)
    return None


def operator() -> str:
    """The operator every action of this session is recorded as: the header set by the
    authenticating proxy (``--operator-header``), else the name typed in the sidebar; checked
    by ``checks.operator_id`` (``ValueError`` saying what is wrong)."""
    header = operator_header()
    if header:
        raw = st.context.headers.get(header)
        if raw is None:
            raise ValueError(f"no operator: this UI takes your name from the {header} header "
                             "that the sign-in proxy sets, and this request had none; open it "
                             "through the proxy")
        return operator_id(raw)
    return operator_id(ss.get("operator"))


def acting_operator() -> str | None:
    """The operator for an action now, or ``None`` (with the reason flashed): callbacks act
    only for a signed-in session with a valid operator id."""
    if not signed_in():
        return None
    try:
        return operator()
    except ValueError as e:
        flash("error", str(e))
        return None


def cb_sign_in() -> None:
    # The password lives in the widget only until this callback has checked it.
    given, ss.password = ss.get("password") or "", ""
    expected = password_hash()
    if expected is None:
        return
    with sign_in_lock():
        if password_matches(given, expected):
            ss.signed_in = True
            return
        time.sleep(SIGN_IN_DELAY_S)
    flash("error", "Wrong password.")


def cb_sign_out() -> None:
    give_back()
    ss.signed_in = False


def sign_in_page() -> None:
    st.subheader("kvloop review")
    with st.form("sign_in", border=False):
        st.text_input("Team password", type="password", key="password")
        st.form_submit_button("Sign in", on_click=cb_sign_in, type="primary")


# -- session state and callbacks ------------------------------------------------------------

def init_state() -> None:
    defaults: dict[str, Any] = {"operator": "", "task": None, "drafts": {}, "active": None,
                                "box_epoch": 0,
                                "flash": None, "queue_done": False, "last_click": None,
                                "click_field": None, "click_words": {}, "focus": None,
                                "skipped": set(), "page": "Review", "zoom": "Page",
                                "upload_round": 0, "open_after": ()}
    for k, v in defaults.items():
        if k not in ss:
            ss[k] = v


def edit_key(name: str) -> str:
    """The widget key of a field's text box.

    Each document opened, and each run that does not draw the boxes, starts a new
    ``box_epoch``: Streamlit drops (or, when the run is interrupted, may keep) a widget's state
    when it is not drawn, and the browser may keep showing the last document's text in a box
    under the same key, so boxes drawn again are new widgets. A new box gets the draft's text
    as its default value, not through session state: the default travels with every copy of
    the element the server sends, while a value set through session state is sent once, and
    a browser that draws the box only from a later run's copy (a quick rerun overtook the
    first) shows it blank, and sends blank when it loses focus (seen on PostgreSQL's slower
    saves)."""
    return f"edit::{name}::{ss.box_epoch}"


def flash(kind: str, text: str) -> None:
    ss.flash = (kind, text)


def current_filter() -> QueueFilter:
    return QueueFilter(model_version=ss.get("f_version") or None,
                       field=ss.get("f_field") or None,
                       confidence_below=ss.get("f_below") if ss.get("f_below_on") else None,
                       status=ss.get("f_status", "unreviewed"))


def show_task(task: ReviewTask | None) -> None:
    """Make ``task`` the form's document: its draft (the operator's unsaved answers, kept
    from an earlier visit if the document is unchanged since) fills the text boxes."""
    # last_click is kept: the image component (one key for every document, so its iframe is
    # reused) keeps returning the last click; only a click with a new timestamp is new.
    ss.task, ss.click_field, ss.click_words = task, None, {}
    ss.queue_done = task is None
    if task is None:
        ss.active = None
        return
    key = (task.lease.operator, task.doc_id)
    draft = ss.drafts.get(key)
    if draft is None or not draft.fits(task):
        draft = ss.drafts[key] = Draft.of(task)
    # New text boxes for each document: the browser may still show (or hold unsent) the last
    # document's text in boxes under the same key.
    ss.box_epoch += 1
    ss.active = first_attention(task)


def current_draft() -> Draft | None:
    """The open document's draft: the operator's answers so far.

    Text reaches it from the boxes only through events the browser sends (``cb_typed`` for a
    box, ``take_boxes`` in the form's buttons), never by reading the boxes' state at other
    times: after a run that did not draw them, Streamlit may hold a blank or stale value under
    the same key."""
    task: ReviewTask | None = ss.task
    return None if task is None else ss.drafts[(task.lease.operator, task.doc_id)]


def take_boxes() -> Draft | None:
    """In a callback of the Review page's own buttons: the draft with every box's text as the
    browser sent it with the click (a box's text is sent with the next event, and the box's
    own change callback may run after the button's)."""
    draft = current_draft()
    if draft is not None:
        for fv in ss.task.fields:
            if edit_key(fv.name) in ss:
                draft.typed(fv.name, ss[edit_key(fv.name)] or "")
    return draft


def set_field(name: str, text: str, pressed: FieldChoice | None) -> None:
    """An answer button sets a field: draft and box together."""
    draft = take_boxes()
    if draft is not None:
        draft.set(name, text, pressed)
        ss[edit_key(name)] = text


def first_attention(task: ReviewTask, after: str | None = None) -> str:
    """The next field (after ``after``) that needs review or failed validation."""
    names = [f.name for f in task.fields]
    start = names.index(after) + 1 if after in names else 0
    order = names[start:] + names[:start]
    for name in order:
        if task.field(name).state in ("needs_review", "failed_validation"):
            return name
    return order[0] if after is None else names[(names.index(after) + 1) % len(names)]


def open_next(reads: QueueReads) -> None:
    """Open the next queued document (in the page's run, with the run's one queue read)."""
    op = acting_operator()
    if op is None:
        return
    # Documents skipped in this session stay out of the way until the queue is refreshed.
    exclude, ss.open_after = set(ss.open_after) | ss.skipped, ()
    try:
        show_task(service().next_document(op, current_filter(), exclude=exclude,
                                          snapshot=reads.snapshot()))
    except StoreError as e:
        flash("error", str(e))


def close_for_next(done: str) -> None:
    """After a save or a skip of ``done``: the page's run opens the next document. Not here:
    the run reads the queue once for the next document, the one to prepare after it and the
    sidebar's progress, after every callback of the click has written."""
    show_task(None)
    ss.queue_done, ss.open_after = False, (done,)


class QueueReads:
    """The queue as this run reads it: one ``ReviewService.snapshot`` for the page and the
    sidebar, taken when first asked (a run's callbacks have written by then)."""

    def __init__(self, svc: ReviewService) -> None:
        self.svc = svc
        self._snapshot: QueueSnapshot | None = None

    def snapshot(self) -> QueueSnapshot:
        if self._snapshot is None:
            op = "" if operator_problem() is not None else operator()
            self._snapshot = self.svc.snapshot(current_filter(), op)
        return self._snapshot


def stale() -> bool:
    """A field's event that arrives with no document open: a text box's change is sent with
    the next click, which may be the "Save and next" that closed the last document."""
    return ss.task is None


def pressed(name: str) -> FieldChoice | None:
    """The answer button last pressed for field ``name`` of the open document."""
    draft = current_draft()
    return None if draft is None else draft.fields[name].pressed


def cb_pick(name: str, index: int) -> None:
    task: ReviewTask = ss.task
    if stale() or index >= len(task.field(name).candidates):
        return
    set_field(name, task.field(name).candidates[index].value,
              FieldChoice("pick", pick_index=index))
    move_on(task, name)


def cb_accept(name: str) -> None:
    """Keep the shown value of one field (its box goes back to it) and move on."""
    task: ReviewTask = ss.task
    if stale():
        return
    set_field(name, task.field(name).value or "", FieldChoice("accept"))
    move_on(task, name)


def cb_not_present(name: str) -> None:
    """The document does not show this field. Pressing it again changes nothing (a double
    click, or a click Streamlit delivers twice when the next one interrupts its run, must not
    undo it): Accept, an alternative or a typed value take it back."""
    if stale():
        return
    set_field(name, "", FieldChoice("not_present"))
    move_on(ss.task, name)


def cb_reject(name: str) -> None:
    """Mark the shown value wrong; the box shows it. Pressing it again changes nothing (as
    with Not present); Accept takes it back, and typing a value replaces it."""
    task: ReviewTask = ss.task
    if stale():
        return
    set_field(name, task.field(name).value or "", FieldChoice("reject"))
    move_on(task, name)


def move_on(task: ReviewTask, name: str) -> None:
    """After an answer to ``name``: the next field that needs attention is under edit, and
    the keyboard goes to its box."""
    ss.active = first_attention(task, after=name)
    ss.focus = ss.active


def cb_typed(name: str) -> None:
    # Enter in a text box moves on (focus too) to the next field that needs attention.
    if stale():
        return
    draft = current_draft()
    if draft is not None and edit_key(name) in ss:
        draft.typed(name, ss[edit_key(name)] or "")
    move_on(ss.task, name)


def cb_focus(name: str) -> None:
    ss.active = name


def form_choice(fv: FieldView) -> FieldChoice:
    draft = current_draft()
    return FieldChoice() if draft is None else draft.choice(fv)


def cb_save(accept_all: bool = False) -> None:
    task: ReviewTask | None = ss.task
    op = acting_operator()
    draft = take_boxes()
    if task is None or op is None or draft is None:
        return
    svc = service()
    try:
        if accept_all:
            changed = [fv.name for fv in task.fields if draft.choice(fv).action != "accept"]
            if changed:
                # "Accept all" keeps the shown values: it must not throw away answers given.
                flash("error", "Not saved: you changed " + ", ".join(changed) + "; use Save "
                      "and next (Accept all would keep the shown values instead).")
                return
            svc.accept_all(task, op)
        else:
            svc.save_correction(task, draft.choices(task), op)
    except (InvalidValueError, StoreError, ValueError, KeyError) as e:
        flash("error", str(e))
        return
    ss.drafts.pop((task.lease.operator, task.doc_id), None)
    flash("success", f"Saved {task.doc_id}.")
    close_for_next(task.doc_id)


def cb_skip() -> None:
    task: ReviewTask | None = ss.task
    op = acting_operator()
    if task is not None and op is not None:
        service().skip(task, op)
        ss.skipped.add(task.doc_id)
        flash("info", f"Skipped {task.doc_id}.")
        close_for_next(task.doc_id)


def cb_undo() -> None:
    op = acting_operator()
    if op is None:
        return
    svc = service()
    try:
        reopened = svc.undo_last(op)
    except StoreError as e:
        flash("error", str(e))
        return
    task: ReviewTask | None = ss.task
    if task is not None and task.doc_id != reopened.doc_id:
        svc.skip(task, task.lease.operator)
    show_task(reopened)
    flash("info", f"Undid your last save of {reopened.doc_id}; it is open again.")


def cb_open_doc() -> None:
    doc_id = (ss.get("goto") or "").strip()
    op = acting_operator()
    if not doc_id or op is None:
        return
    old: ReviewTask | None = ss.task
    try:
        task = service().open(doc_id, op)
    except (StoreError, KeyError) as e:
        flash("error", str(e).strip('"'))
        return
    if old is not None and old.doc_id != doc_id:
        service().skip(old, old.lease.operator)
    show_task(task)


def give_back() -> None:
    """Close the open document, releasing it under the name that opened it."""
    old: ReviewTask | None = ss.task
    if old is not None:
        service().skip(old, old.lease.operator)
    show_task(None)


def cb_operator() -> None:
    """A new name: the open document is given back, the queue opens again for the new one."""
    give_back()
    ss.queue_done = False


def cb_refresh() -> None:
    ss.queue_done, ss.skipped = False, set()
    refresh_acceptance(service())


def refresh_acceptance(svc: ReviewService) -> None:
    """Route by the audit as it stands now: a field whose audited precision fell below the
    target goes back to review."""
    model_dir = os.environ.get("KVLOOP_MODEL")
    if model_dir:
        svc.set_acceptance(acceptance_policy(svc.store, model_dir))


def cb_filters() -> None:
    """New filters: give back the open document and take the first one they select."""
    give_back()
    ss.queue_done = False


# -- rendering --------------------------------------------------------------------------------

def sidebar(svc: ReviewService, reads: QueueReads) -> None:
    with st.sidebar:
        header = operator_header()
        problem = operator_problem()
        if header is None:
            st.text_input("Operator name", key="operator", on_change=cb_operator,
                          placeholder="your name")
            if problem and (ss.get("operator") or "").strip():
                st.error(md_text(problem))
        elif problem is None:
            st.caption(f"Signed in as **{md_text(operator())}** (from the {md_text(header)} "
                       "header)")
        if password_hash() is not None:
            st.button("Sign out", on_click=cb_sign_out, type="tertiary")
        st.radio("Page", ["Review", "Queue", "Upload", "History", "Stats"], key="page")
        st.divider()
        st.caption("Queue filters")
        st.selectbox("Model version", ["", *reads.snapshot().model_versions], key="f_version",
                      format_func=lambda v: v or "latest of any", on_change=cb_filters)
        st.selectbox("Field", [""] + svc.schema.field_names, key="f_field",
                      format_func=lambda v: v or "any field", on_change=cb_filters)
        st.checkbox("Only confidence below", key="f_below_on", on_change=cb_filters)
        st.slider("Confidence below", 0.0, 1.0, 0.9, 0.05, key="f_below", on_change=cb_filters,
                  label_visibility="collapsed")
        st.radio("Show", ["unreviewed", "reviewed", "all"], key="f_status", horizontal=True,
                 on_change=cb_filters)
        p = svc.progress(current_filter(), snapshot=reads.snapshot())
        st.progress(p.done / p.total if p.total else 1.0,
                    text=f"Reviewed {p.done} of {p.total} queued documents")
        st.text_input("Open document id", key="goto", on_change=cb_open_doc)
        key_guard()


def show_flash(slot: Any) -> None:
    """The pending message, in ``slot``: a one-line placeholder on every page, so a message
    coming or going moves nothing below it (the browser then updates the page image and the
    field cards in place) and, unlike a toast, covers no button. Errors stay until the next
    action; confirmations ("Saved ...") are a quiet line."""
    if ss.flash:
        kind, text = ss.flash
        if kind == "error":
            slot.error(md_text(text))
        else:
            slot.caption(("✓ " if kind == "success" else "") + md_text(text))
        ss.flash = None
    else:
        slot.caption("\u00a0")  # keeps the line's height


def form_text(fv: FieldView) -> str:
    draft = current_draft()
    return "" if draft is None else draft.fields[fv.name].text


def form_indices(task: ReviewTask, fv: FieldView) -> tuple[int, ...]:
    """Words to outline for a field: those of the candidate its text box now holds."""
    text = form_text(fv)
    clicked = ss.click_words.get(fv.name, [])
    if clicked and text == " ".join(task.doc.words[i].text for i in clicked):
        return tuple(clicked)
    for c in fv.candidates:
        if c.value == text:
            return tuple(c.word_indices)
    return tuple(fv.word_indices) if text == (fv.value or "") else ()


def apply_click(task: ReviewTask, window: tuple[int, int, int, int]) -> None:
    """Fill the field under edit with the word the operator clicked on the page image.

    Runs before the image is drawn so the boxes already show the new value; the click is read
    from the component's state (its coordinates are on the image shown with ``window``).
    """
    click = ss.get("page_image")
    if not click or click == ss.last_click or not ss.active:
        return
    ss.last_click = click
    shown = (float(click.get("width") or RENDER_WIDTH), float(click.get("height") or 1))
    idx = imaging.word_at(task.doc, *imaging.display_to_page(click["x"], click["y"], shown,
                                                             window))
    if idx is None:
        return
    # The first click on a field replaces its value; further clicks append words.
    name, word = ss.active, task.doc.words[idx].text
    appending = ss.click_field == name
    text = f"{form_text(task.field(name))} {word}".strip() if appending else word
    set_field(name, text, None)
    ss.click_words[name] = (ss.click_words.get(name, []) if appending else []) + [idx]
    ss.click_field = name


def render_image(task: ReviewTask) -> None:
    st.segmented_control("Zoom", list(ZOOMS), key="zoom", label_visibility="collapsed")
    # The zoom window centres on the active field's words as the form stands (the words it
    # shows were computed before this run's click is applied, so click coordinates match).
    anchor: list[int] = []
    if ss.active:
        fv = task.field(ss.active)
        anchor = list(form_indices(task, fv)) or fv.word_indices
    window = imaging.field_window(task.doc, anchor, ZOOMS.get(ss.zoom or "Page", 1.0))
    apply_click(task, window)
    boxes = tuple((fv.name, form_indices(task, fv)) for fv in task.fields)
    img = page_with_boxes(task.doc_id, task.doc.content_hash(), boxes, ss.active, window, task)
    st.caption(f"Click a word to fill **{md_text(ss.active)}** (more clicks add words)"
               if ss.active else "")
    # ``img`` holds the JPEG bytes already: the component's "save" copies them, no re-encode.
    streamlit_image_coordinates(img, key="page_image", image_format="JPEG",
                                jpeg_quality=JPEG_QUALITY, cursor="crosshair", width="stretch")


def md_text(text: object) -> str:
    """``text`` shown literally in Streamlit markdown (labels, captions, alerts and toasts too).

    HTML-escaped first, so ``<script>`` or ``<img onerror=...>`` in a document's words, a field
    value, a file name or an operator id is text whatever the renderer does with HTML; then
    markdown's own specials are backslash-escaped (values hold ``$``, ``*``, ``:`` ... that
    would turn into maths, emphasis or emoji); line breaks become spaces (no new blocks).
    """
    one_line = " ".join(str(text).splitlines())
    return MARKDOWN_SPECIAL.sub(r"\\\g<0>", html.escape(one_line, quote=False))


def field_label(name: str) -> str:
    """The label (and so the accessible name ``move_focus`` looks for) of a field's text box.

    Not escaped: ``FieldSpec`` allows only letters, digits and ``_`` in names."""
    return f"{name} value"


def alternative_label(i: int, c: Candidate, struck: bool = False) -> str:
    text = f"{i + 1}: {md_text(c.value)} ({c.score:.2f})"
    return f"~~{text}~~" if struck else text


SCORES_HELP = ("The model's score for this alternative: its share of the probability over the "
               "field's candidate spans, not calibrated (the field's confidence is).")


def button_kind(on: bool) -> Literal["primary", "secondary"]:
    """An answer button shows as pressed while its answer stands."""
    return "primary" if on else "secondary"


def render_field(task: ReviewTask, fv: FieldView) -> None:
    active = fv.name == ss.active
    choice = form_choice(fv)
    last = pressed(fv.name)
    with st.container(border=True):
        # One line of text and one button: every element here is drawn five times per page.
        head = st.columns([5, 1])
        head[0].markdown(f"**{md_text(fv.name)}** {STATE_BADGE[fv.state]}"
                         + (" :red[(editing)]" if active else "")
                         + f" · confidence `{fv.confidence:.2f}`"
                         + (f" · {'rejected ' if fv.rejected else ''}by "
                            f"{md_text(fv.reviewed_by)}" if fv.reviewed_by else ""),
                         help="Confidence: the calibrated chance that the model's value is "
                              "right. The numbers after the alternatives are the model's raw "
                              "scores (not calibrated).")
        head[1].button("Edit", key=f"focus::{fv.name}", on_click=cb_focus, args=(fv.name,),
                       disabled=active, type="tertiary")
        if fv.problem:
            st.caption(f":red[{md_text(fv.problem)}]")
        if fv.rejected:
            st.caption(f":red[**rejected:** ~~{md_text(fv.rejected_value)}~~] · type or pick "
                       "the right value, press Not present, or Wrong value again")
        # The draft's text is the box's default (a new box's value): see edit_key.
        st.text_input(field_label(fv.name), value=form_text(fv), key=edit_key(fv.name),
                      on_change=cb_typed,
                      args=(fv.name,), label_visibility="collapsed",
                      placeholder="(not present)" if not fv.rejected else "(type the value)")
        # The answers: whole values, wrapped over as many lines as they need (operators
        # compare them), then "accept", "not present" and "wrong". Their keys hold Alt, so
        # no key typed into a text box can also press one.
        answers = st.container(horizontal=True, gap="small")
        for i, c in enumerate(fv.candidates[:MAX_ALTERNATIVES]):
            struck = fv.rejected and c.value == fv.rejected_value
            answers.button(alternative_label(i, c, struck), key=f"pick::{fv.name}::{i}",
                           on_click=cb_pick, args=(fv.name, i), disabled=struck,
                           type=button_kind(choice.action == "pick" and choice.pick_index == i),
                           shortcut=f"Alt+{i + 1}" if active and not struck else None,
                           help="Marked wrong by an operator" if struck else SCORES_HELP,
                           wrap=True)
        answers.button("Accept", key=f"accept::{fv.name}", on_click=cb_accept, args=(fv.name,),
                       disabled=fv.rejected,
                       type=button_kind(last is not None and last.action == "accept"
                                        and choice.action == "accept"),
                       shortcut=ACCEPT_KEY if active and not fv.rejected else None,
                       help="Keep the shown value and go to the next field")
        answers.button("Not present", key=f"absent::{fv.name}", on_click=cb_not_present,
                       args=(fv.name,), type=button_kind(choice.action == "not_present"),
                       shortcut=ABSENT_KEY if active else None,
                       help="The document does not show this field (Accept, an alternative or a "
                            "typed value take it back)")
        # Nothing shown, nothing to call wrong ("Not present" or a typed value say more).
        can_reject = fv.value is not None or fv.rejected
        answers.button("Wrong value", key=f"reject::{fv.name}", on_click=cb_reject,
                       args=(fv.name,), disabled=not can_reject,
                       type=button_kind(choice.action == "reject"),
                       shortcut=REJECT_KEY if active and can_reject else None,
                       help="The shown value is wrong and you do not know the right one: it "
                            "is saved as wrong and the field stays open (Accept takes it back; "
                            "typing a value replaces it)")
        problem = None
        if choice.action == "edit":
            problem = (service().check(task, fv.name, choice.value) if choice.value
                       else "the box is empty: type the value, or press Not present")
        elif choice.action == "accept" and fv.rejected:
            problem = "needs an answer before saving"
        if problem:
            st.caption(f":red[{md_text(problem)}]")
        elif choice.action == "reject":
            st.caption(f":red[**rejected:** {md_text(fv.value or fv.rejected_value or '')}] · "
                       "will save as wrong; the field stays open for review")
        elif choice.action != "accept" or last is not None:
            st.caption(f"will save: **{describe(choice)}**")


def key_guard() -> None:
    st.iframe(KEY_GUARD_JS, height=1)


def move_focus() -> None:
    """Put the keyboard in the text box of the field under edit after an answer (Streamlit has
    no focus API), caret after its text: nothing is selected, so no key pressed there replaces
    the value.

    The script runs in an iframe, same-origin with the app, possibly a moment later: if the
    operator has put the keyboard somewhere since their last answer (``KEY_GUARD_JS`` counts
    focus changes), it is left there."""
    if not ss.focus:
        return
    ss.focus_nonce = ss.get("focus_nonce", 0) + 1
    st.iframe(focus_script(field_label(ss.focus), ss.focus_nonce), height=1)
    ss.focus = None


def review_page(svc: ReviewService, reads: QueueReads) -> bool:
    """The Review page; whether it drew the field's text boxes."""
    problem = operator_problem()
    if problem is not None:
        if operator_header() is not None:
            st.error(md_text(problem))
        elif not (ss.get("operator") or "").strip():
            st.info("Enter your operator name in the sidebar to start reviewing.")
        else:
            st.info("Fix your operator name in the sidebar to start reviewing.")
        return False
    op = operator()
    if ss.task is None and not ss.queue_done:
        open_next(reads)
    task: ReviewTask | None = ss.task
    bar = st.columns([2, 2, 1, 1])
    bar[2].button("Undo last save", on_click=cb_undo, width="stretch",
                  disabled=svc.store.last_undoable(op) is None,
                  help="Reopen the document you saved last and cancel that save")
    if task is None:
        skipped = [q.doc_id for q in svc.queue(current_filter(), op, snapshot=reads.snapshot())
                   if q.doc_id in ss.skipped]
        if skipped:
            st.info(f"Nothing left to review with these filters but the {len(skipped)} "
                    "document(s) you skipped: Refresh queue to see them again.")
        else:
            st.success("Nothing left to review with these filters.")
        bar[3].button("Refresh queue", on_click=cb_refresh, width="stretch")
        return False
    bar[0].button("Accept all and next", on_click=cb_save, kwargs={"accept_all": True},
                  type="primary", shortcut="Ctrl+Shift+Enter", width="stretch")
    bar[1].button("Save and next", on_click=cb_save, type="primary", shortcut="Ctrl+Enter",
                  width="stretch")
    bar[3].button("Skip", on_click=cb_skip, width="stretch")
    audit = " · audit sample" if task.route.audit else ""
    left, right = st.columns([5, 6])
    # The page image is sent first, the heading beside it after: the browser then draws the
    # picture while it lays out the field cards, instead of after them.
    with left:
        render_image(task)
    with right:
        # One line in large type too: the lock's time goes in the caption under it.
        st.markdown(f"#### {md_text(task.doc_id)} · model "
                    f"{md_text(task.result.model_version)}{audit}")
        st.caption(f"locked for you until {task.lease.expires_at:%H:%M} UTC")
        for fv in task.fields:
            render_field(task, fv)
        st.caption("Keys for the field being edited (in a text box too): Alt+1-5 pick an "
                   "alternative · Alt+A accept · Alt+N not present · Alt+X wrong value · "
                   "Enter in a box moves to the next field that needs attention · "
                   "Ctrl+Enter save and next · Ctrl+Shift+Enter accept all and next")
        move_focus()
    if ss.get("warmed") != task.doc_id:
        # Decode the next document's page while the operator works on this one.
        ss.warmed = task.doc_id
        width = int(RENDER_WIDTH * ZOOMS.get(ss.zoom or "Page", 1.0))
        for doc in svc.upcoming(op, current_filter(), exclude=(task.doc_id,),
                                snapshot=reads.snapshot()):
            imaging.warm(doc, width)
    return True


def upload_page() -> None:
    st.subheader("Upload images or PDFs")
    model_dir = os.environ.get("KVLOOP_MODEL")
    if not model_dir:
        st.warning("Uploads need a model: start the UI with `kvloop review --model DIR`.")
        return
    max_mb = int(os.environ.get("KVLOOP_MAX_UPLOAD_MB", MAX_UPLOAD_MB))
    # A new key after each run empties the box, so files already read are not read again.
    files = st.file_uploader("Receipts", type=["jpg", "jpeg", "png", "tif", "tiff", "pdf"],
                             accept_multiple_files=True, key=f"uploads-{ss.upload_round}",
                             max_upload_size=max_mb)
    if st.button("Run OCR and extraction", disabled=not files):
        uploader = get_uploader(os.environ.get("KVLOOP_STORE", ""), model_dir,
                                os.environ.get("KVLOOP_UPLOAD_DIR", "uploads"),
                                os.environ.get("KVLOOP_RERANK") or None, max_mb)
        with st.spinner("OCR and extraction..."):
            ss.upload_report = uploader.ingest(service(), [(f.name, f.getvalue())
                                                           for f in files or []])
        ss.queue_done = False
        ss.upload_round += 1
        st.rerun()
    report = ss.get("upload_report")
    if report is not None:
        if report.added:
            st.success(f"Added {len(report.added)} page(s) to the queue: "
                       + ", ".join(md_text(d) for d in report.added))
        if report.skipped:
            st.info("Already in the store: " + ", ".join(md_text(d) for d in report.skipped))
        for name, problem in report.failures:
            st.error(md_text(f"{name}: {problem}"))


def thresholds_caption(svc: ReviewService) -> str:
    """One line: each field's auto-accept threshold in force, and where it comes from."""
    in_force = svc.thresholds_in_force()
    fitted = any(t.source == "fitted" for t in in_force)
    parts = [f"{md_text(t.field)} " + ("always reviewed" if t.value is None else f"≥ {t.value:.2f}")
             + (" (schema default)" if fitted and t.source == "schema" else "")
             for t in in_force]
    where = "fitted with the model" if fitted else "schema defaults (none fitted with the model)"
    return f"Auto-accept thresholds, {where}: " + " · ".join(parts)


def queue_page(svc: ReviewService, reads: QueueReads) -> None:
    st.subheader("Queue")
    snap = reads.snapshot()
    items = svc.queue(current_filter(), snap.operator, snapshot=snap)
    p = svc.progress(current_filter(), snapshot=snap)
    st.caption(f"{len(items)} document(s) listed with the sidebar filters, most uncertain "
               f"first · reviewed {p.done} of {p.total}")
    st.dataframe([{"document": q.doc_id, "lowest confidence": round(q.min_confidence, 3),
                   "fields to review": ", ".join(q.review_fields) or "(audit sample)",
                   "model": q.model_version, "reviewed": q.reviewed,
                   "locked": q.leased_by or "",
                   "skipped by you": q.doc_id in ss.skipped} for q in items], hide_index=True)
    st.caption(thresholds_caption(svc))


def history_page(svc: ReviewService) -> None:
    st.subheader("Document history")
    default = ss.task.doc_id if ss.task else ""
    doc_id = st.text_input("Document id", value=default, key="hist_doc")
    if not doc_id:
        return
    rows = svc.history(doc_id)
    if not rows:
        st.info(md_text(f"No review recorded for {doc_id!r}."))
        return
    st.dataframe([{"save": h.save_id, "when (UTC)": f"{h.ended_at:%Y-%m-%d %H:%M:%S}",
                   "operator": h.operator, "field": h.field, "action": h.action,
                   "before": h.before, "after": h.after, "undone": h.undone} for h in rows],
                 hide_index=True)


def stats_page(svc: ReviewService) -> None:
    st.subheader("Stats")
    s = svc.stats()
    c = st.columns(4)
    c[0].metric("Reviewed today", s.store.docs_reviewed_since)
    c[1].metric("Saves today", s.store.saves_since)
    c[2].metric("Queue progress", f"{s.queue_done} / {s.queue_total}")
    c[3].metric("Agreement with model",
                "n/a" if s.store.agreement is None else f"{s.store.agreement:.1%}")
    st.dataframe([{"field": f, "reviewed": n, "corrections": s.store.corrections_per_field.get(f, 0),
                   "agreement": f"{s.store.agreement_per_field[f]:.1%}"}
                  for f, n in s.store.actions_per_field.items()], hide_index=True)
    if s.store.per_operator_since:
        st.caption("Saves today per operator: " + ", ".join(
            f"{md_text(k)}: {v}" for k, v in s.store.per_operator_since.items()))
    st.caption(thresholds_caption(svc))
    model_dir = os.environ.get("KVLOOP_MODEL")
    if model_dir:
        refresh_acceptance(svc)
        st.markdown("**Straight-through processing** (certified thresholds and the audit)")
        st.dataframe([{"field": f.field, "auto-accepted now": f.in_force,
                       "P(correct) threshold": f.threshold, "certified on": f.certified_items,
                       "audited": f.audited, "audited precision": f.audited_precision,
                       "status": f.note}
                      for f in straight_through_status(svc.store, model_dir)], hide_index=True)


def main() -> None:
    st.set_page_config(page_title="kvloop review", layout="wide")
    st.html(ALTERNATIVES_CSS)
    init_state()
    if not signed_in():
        flash_slot = st.empty()
        sign_in_page()
        show_flash(flash_slot)
        ss.box_epoch += 1
        return
    if ss.page != "Review":  # before anything is drawn: an interrupted run counts too
        ss.box_epoch += 1
    svc = service()
    reads = QueueReads(svc)
    flash_slot = st.empty()
    page = ss.page
    drew_boxes = False
    if page == "Review":
        drew_boxes = review_page(svc, reads)
    elif page == "Queue":
        queue_page(svc, reads)
    elif page == "Upload":
        upload_page()
    elif page == "History":
        history_page(svc)
    else:
        stats_page(svc)
    if page == "Review" and not drew_boxes:
        ss.box_epoch += 1
    # The sidebar after the page: the next document's heading and image reach the browser
    # first (the sidebar's place on screen does not depend on when it is drawn).
    sidebar(svc, reads)
    show_flash(flash_slot)  # after the page: its callbacks and queue moves may set one


main()
