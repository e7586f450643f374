"""Thin entry points: one module per ``kvloop`` subcommand (``add_arguments`` + ``run``)."""
