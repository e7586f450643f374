"""An operator's unsaved answers for one open document: what "Save and next" records.

The review form's text boxes are Streamlit widgets, and Streamlit deletes a widget's state when
the widget is not drawn (the operator looked at another page). So the boxes are never what a
save reads: every change lands in a ``Draft`` kept under the app's own session state, the boxes
are refilled from it whenever the Review page is drawn again, and a save reads the draft.

No Streamlit here: the rules that turn a box's text and the last button pressed into a
``FieldChoice`` are plain functions, tested on their own (``tests/test_draft.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extractor.normalize import collapse_ws
from feedback_ui.service import FieldChoice, FieldView, ReviewTask


@dataclass
class FieldDraft:
    """One field as the form stands: its box's text and the last answer button pressed."""

    text: str
    pressed: FieldChoice | None = None


@dataclass
class Draft:
    """The answers an operator has given so far for one document opened for review.

    ``seen`` is each field's current action id when the document was opened: a draft is only
    restored onto the same result and the same reviewed state (else the store would refuse
    its save as stale anyway, and the operator should see the new values).
    """

    doc_id: str
    extraction_id: int
    seen: dict[str, int | None]
    fields: dict[str, FieldDraft] = field(default_factory=dict)

    @classmethod
    def of(cls, task: ReviewTask) -> Draft:
        """A fresh draft: every box shows the field's shown value, nothing pressed."""
        return cls(task.doc_id, task.extraction_id,
                   {fv.name: fv.seen_action_id for fv in task.fields},
                   {fv.name: FieldDraft(fv.value or "") for fv in task.fields})

    def fits(self, task: ReviewTask) -> bool:
        """Whether this draft was made on ``task`` as it is now (same result, same reviews)."""
        return (self.doc_id == task.doc_id and self.extraction_id == task.extraction_id
                and self.seen == {fv.name: fv.seen_action_id for fv in task.fields})

    def set(self, name: str, text: str, pressed: FieldChoice | None) -> None:
        self.fields[name] = FieldDraft(text, pressed)

    def typed(self, name: str, text: str) -> None:
        """The operator's text in the box; the pressed button stays (``choice`` decides
        whether it still stands)."""
        self.fields[name].text = text

    def choice(self, fv: FieldView) -> FieldChoice:
        return draft_choice(fv, self.fields[fv.name])

    def choices(self, task: ReviewTask) -> dict[str, FieldChoice]:
        return {fv.name: self.choice(fv) for fv in task.fields}


def draft_choice(fv: FieldView, fd: FieldDraft) -> FieldChoice:
    """What the form says for one field, from its box and the last button pressed.

    A pressed answer stands while the box still shows what it put there: a pick while it holds
    that alternative, "not present" while it is empty, "wrong value" while it holds the value
    marked wrong (or, on a field already marked wrong, while it is empty). Otherwise the box
    decides: the shown value is an accept, anything else an edit. An emptied box is an edit of
    nothing, which the service refuses with its reason: only an explicit "not present" (or
    the service's ``clear``) removes a value, and an accept of a value marked wrong is refused
    the same way.
    """
    text, p = collapse_ws(fd.text), fd.pressed
    shown = collapse_ws(fv.value or "")
    if p is not None:
        if (p.action == "pick" and p.pick_index is not None
                and 0 <= p.pick_index < len(fv.candidates)
                and text == collapse_ws(fv.candidates[p.pick_index].value)):
            return p
        if p.action == "not_present" and not text:
            return p
        if p.action == "reject" and text == shown:
            return p
    if text == shown:
        return FieldChoice("accept")
    return FieldChoice("edit", value=text)


ACTION_WORDS = {"accept": "accept", "pick": "alternative", "edit": "your value",
                "clear": "clear", "not_present": "not present", "reject": "marked wrong"}


def describe(choice: FieldChoice) -> str:
    """What a choice will save, in the operator's words ("alternative #2", "not present")."""
    words = ACTION_WORDS[choice.action]
    return f"{words} #{choice.pick_index + 1}" if choice.pick_index is not None else words
