"""Feedback store (SQLAlchemy) and the Streamlit correction UI.

* ``feedback_ui.store``: ``FeedbackStore`` (documents, results, append-only review history,
  leases; migrated on open) and the training/eval API (``iter_corrected``,
  ``iter_preference_pairs``, ``export_jsonl``, ``to_dataset``).
* ``feedback_ui.routing`` / ``feedback_ui.checks``: auto-accept thresholds, audit sample,
  validation rules.
* ``feedback_ui.service``: ``ReviewService``, what the UI calls (queue, open, save, undo, stats).
* ``feedback_ui.ingest``: uploads -> OCR -> extraction -> queue.
* ``feedback_ui.app``: the Streamlit UI (``kvloop review --store URL``).
"""
