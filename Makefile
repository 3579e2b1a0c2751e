# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint typecheck pytest system-deps diagrams bench clean

demo: $(VENV)/.demo
	$(VENV)/bin/bargein demo

test: system-deps $(VENV)/.dev lint typecheck pytest

system-deps:
	@bash scripts/install-system-deps.sh

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.demo: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(VENV)/bin/python system-deps
	$(PY) -m pip install -q -e '.[dev,audio]'
	touch $@ $(VENV)/.demo

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check bargein tests bench examples

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy --strict bargein examples

pytest: $(VENV)/.dev
	$(VENV)/bin/pytest

diagrams: $(VENV)/.demo
	$(VENV)/bin/bargein diagram --format mermaid -o diagrams/conversation.mmd
	$(VENV)/bin/bargein diagram --format svg -o diagrams/conversation.svg

bench: $(VENV)/.dev
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
