"""The review UI's two scripts (Streamlit has no keyboard-focus API): constant code, run in a
zero-height iframe that is same-origin with the app, naming only schema field names.

``KEY_GUARD_JS`` makes typed text safe from answer keys; ``focus_script`` moves the keyboard
to a field's text box after an answer.
"""

from __future__ import annotations

import json

# Keys in a text box. Streamlit sends a box's text only on Enter or when it loses focus, so a
# key that acts while the operator's typing is still in the box would act on the text from
# before it. So, where the operator typed since the box got the keyboard: Ctrl+Enter first
# sends the text (the save then reads it), and an Alt answer key only sends the text and is
# not passed on (a typed value is never replaced by a key). In a box the operator has not
# typed in (the app moved the keyboard there), Alt keys act at once.
KEY_GUARD_JS = """<script>
const doc = window.parent.document;
const isBox = (el) => el && el.tagName === 'INPUT' && el.type === 'text';
if (!doc.kvloopKeyGuard) {
  doc.kvloopKeyGuard = true;
  // The operator's own focus changes, and how many there were at their last answer (a key or
  // a click): the app moves the keyboard after an answer only if there was none since.
  doc.kvloopFocusSeq = 0;
  doc.kvloopAnswerSeq = 0;
  doc.addEventListener('focusin', (e) => {
    if (!doc.kvloopMoving) doc.kvloopFocusSeq += 1;
    if (!isBox(e.target)) return;
    e.target.dataset.typed = '';
    // The field whose box has the keyboard is the one under edit (its keys, its zoom).
    const m = /^(\\w+) value$/.exec(e.target.getAttribute('aria-label') || '');
    const edit = m && doc.querySelector('.st-key-focus--' + m[1] + ' button:not([disabled])');
    if (edit) edit.click();
  }, true);
  doc.addEventListener('input', (e) => { if (isBox(e.target)) e.target.dataset.typed = '1'; },
                       true);
  doc.addEventListener('click', (e) => {
    if (e.isTrusted && e.target.closest('button')) doc.kvloopAnswerSeq = doc.kvloopFocusSeq;
  }, true);
  doc.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.altKey) doc.kvloopAnswerSeq = doc.kvloopFocusSeq;
    const el = doc.activeElement;
    if (!isBox(el) || ['Alt', 'Control', 'Meta', 'Shift'].includes(e.key)) return;
    const save = (e.ctrlKey || e.metaKey) && e.key === 'Enter';
    if (e.key === 'Enter' && !save) { el.dataset.typed = ''; return; }
    if (!(e.altKey || save) || !el.dataset.typed) return;
    el.dataset.typed = '';
    el.blur();
    if (!save) { e.preventDefault(); e.stopImmediatePropagation(); }
  }, true);
}
</script>"""


def focus_script(label: str, nonce: int) -> str:
    """Put the keyboard in the text box labelled ``label``, caret after its text (nothing is
    selected, so no key pressed there replaces the value), unless the operator has put the
    keyboard somewhere since their last answer (``KEY_GUARD_JS`` counts focus changes). The
    ``nonce`` makes each request a new script."""
    # JSON inside <script>: "<", ">" and "&" as \\u escapes, so no value can close the tag.
    name = (json.dumps(label).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))
    return ("<script>/* " + str(nonce) + " */ const doc = window.parent.document; "
            "const sel = 'input[aria-label=' + JSON.stringify(" + name + ") + ']'; "
            "const f = () => { const el = doc.querySelector(sel); "
            "if (!el) { setTimeout(f, 50); return; } "
            "if (doc.kvloopFocusSeq !== doc.kvloopAnswerSeq) return; "
            "doc.kvloopMoving = true; el.focus(); doc.kvloopMoving = false; "
            "const n = el.value.length; el.setSelectionRange(n, n); }; f();</script>")
