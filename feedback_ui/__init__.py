"""Feedback store (SQLAlchemy) and the Streamlit correction UI."""
