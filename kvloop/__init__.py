"""kvloop: a key-value extractor and the loop that learns from the people who correct it."""

__version__ = "0.1.0"
