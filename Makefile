# The README's two commands: `make demo` (install, then the whole loop on the demo data) and
# `make test` (install, then the test suite).
PYTHON ?= python3
DEMO_OUT ?= runs/demo

.PHONY: install demo test
install:
	bash scripts/install.sh

demo: install
	kvloop demo --out $(DEMO_OUT)
	kvloop compare --config demo --data $(DEMO_OUT)/data/documents.jsonl --out $(DEMO_OUT)/compare

test: install
	$(PYTHON) -m pytest -q
