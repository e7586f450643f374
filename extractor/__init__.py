"""Extractor: document model, loaders, OCR, alignment and the BERT+LayoutLM ensemble."""
