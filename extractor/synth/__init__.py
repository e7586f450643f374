"""Seeded synthetic receipts with known gold values, OCR'd for the embedded demo."""

from extractor.synth.content import Receipt, make_receipt
from extractor.synth.demo import generate_demo, load_demo, read_documents, synth_receipt
from extractor.synth.render import available_fonts, render_receipt

__all__ = ["Receipt", "available_fonts", "generate_demo", "load_demo", "make_receipt",
           "read_documents", "render_receipt", "synth_receipt"]
