"""Batch evaluation: SROIE-style metrics, calibration, bootstrap CIs and reports."""
