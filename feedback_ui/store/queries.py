"""The SELECTs that derive current state from the append-only history.

A field's state is its latest action in a ``review`` save that no ``undo`` save cancels. Every
subquery here disables auto-correlation: they read the same tables as the queries they sit in,
and must not be folded into them.
"""

from __future__ import annotations

from sqlalchemy import Select, Subquery, and_, func, select
from sqlalchemy.orm import aliased

from feedback_ui.store.clock import as_utc
from feedback_ui.store.models import ActionRow, DocumentRow, ExtractionRow, SaveRow
from feedback_ui.store.records import FeedbackFilter


def undone_save_ids() -> Select:
    return select(SaveRow.undoes_id).where(SaveRow.undoes_id.is_not(None)).correlate(None)


def effective_saves() -> Select:
    """Review saves not undone."""
    return select(SaveRow).where(SaveRow.kind == "review", SaveRow.id.not_in(undone_save_ids()))


def effective_actions() -> Select:
    """(action, save) of review saves not undone, oldest first."""
    return (select(ActionRow, SaveRow).join(SaveRow, ActionRow.save_id == SaveRow.id)
            .where(SaveRow.kind == "review", SaveRow.id.not_in(undone_save_ids()))
            .order_by(ActionRow.id))


def latest_action_ids() -> Select:
    """The id of each (document, field)'s current action."""
    return (select(func.max(ActionRow.id)).join(SaveRow, ActionRow.save_id == SaveRow.id)
            .where(SaveRow.kind == "review", SaveRow.id.not_in(undone_save_ids()))
            .group_by(ActionRow.doc_id, ActionRow.field).correlate(None))


def open_doc_ids() -> Select:
    """Documents with a field whose current action is a ``reject``: not finished yet."""
    return (select(ActionRow.doc_id).where(ActionRow.id.in_(latest_action_ids()),
                                           ActionRow.action == "reject").correlate(None))


def open_fields() -> Select:
    """(doc_id, field) of every field whose current action is a ``reject``."""
    return select(ActionRow.doc_id, ActionRow.field).where(
        ActionRow.id.in_(latest_action_ids()), ActionRow.action == "reject")


def reviewed_doc_ids() -> Select:
    """Documents with a save not undone and no field left open by a reject."""
    return (effective_saves().with_only_columns(SaveRow.doc_id)
            .where(SaveRow.doc_id.not_in(open_doc_ids())).distinct())


def _selected_fields(flt: FeedbackFilter) -> Select:
    """(doc_id, field) whose current action passes ``flt``."""
    last, save, ext = aliased(ActionRow), aliased(SaveRow), aliased(ExtractionRow)
    q = (select(last.doc_id, last.field).join(save, last.save_id == save.id)
         .outerjoin(ext, save.extraction_id == ext.id)
         .where(last.id.in_(latest_action_ids())))
    if flt.model_version is not None:
        q = q.where(ext.model_version == flt.model_version)
    if flt.dataset is not None:
        q = q.where(save.dataset == flt.dataset)
    if flt.operator is not None:
        q = q.where(save.operator == flt.operator)
    if flt.since is not None:
        q = q.where(save.ended_at >= as_utc(flt.since))
    if flt.until is not None:
        q = q.where(save.ended_at < as_utc(flt.until))
    if flt.actions is not None:
        q = q.where(last.action.in_(sorted(flt.actions)))
    return q


def _selected_doc_ids(fields: Subquery, flt: FeedbackFilter) -> Select:
    q = select(fields.c.doc_id).distinct().correlate(None)
    return q if flt.limit is None else q.order_by(fields.c.doc_id).limit(flt.limit)


def feedback_history(flt: FeedbackFilter) -> Select:
    """(action, save, model version) of every non-undone action of the selected fields, by
    document then age: what ``FieldFeedback`` is built from, in one query."""
    fields = _selected_fields(flt).subquery("selected")
    q = (select(ActionRow, SaveRow, ExtractionRow.model_version)
         .join(SaveRow, ActionRow.save_id == SaveRow.id)
         .outerjoin(ExtractionRow, SaveRow.extraction_id == ExtractionRow.id)
         .join(fields, and_(fields.c.doc_id == ActionRow.doc_id,
                            fields.c.field == ActionRow.field))
         .where(SaveRow.kind == "review", SaveRow.id.not_in(undone_save_ids()))
         .order_by(ActionRow.doc_id, ActionRow.id))
    if flt.limit is not None:
        q = q.where(ActionRow.doc_id.in_(_selected_doc_ids(fields, flt)))
    return q


def feedback_documents(flt: FeedbackFilter) -> Select:
    """(id, Document JSON) of the documents ``feedback_history`` returns, by id."""
    fields = _selected_fields(flt).subquery("selected")
    return (select(DocumentRow.id, DocumentRow.data)
            .where(DocumentRow.id.in_(_selected_doc_ids(fields, flt)))
            .order_by(DocumentRow.id))
