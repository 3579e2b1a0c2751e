# The two commands a newcomer needs: `make demo` and `make test`.
#
# Installs come from the lock in requirements/ (exact versions with hashes, made by
# `make lock`), so `make test` installs today what it installed the day the lock was made.
# `make test-latest` runs the same checks against the newest releases the ranges in
# pyproject.toml allow, in a venv of its own: drift shows up there, by name, and never
# breaks `make test`. `make test-lowest` runs the tests against the oldest releases those
# ranges allow for what bargein itself needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
LOCKED := $(PIP) --require-hashes --no-build-isolation -r
PYTEST_ARGS ?=

.PHONY: demo test test-fast test-latest test-lowest lint typecheck pytest system-deps diagrams bench lock clean

demo: $(VENV)/.demo
	$(VENV)/bin/bargein demo

test: system-deps $(VENV)/.dev lint typecheck pytest

test-fast: $(VENV)/.dev  ## the pure parts: no sockets, devices or long property runs
	$(VENV)/bin/pytest -m "not e2e and not device and not slow" $(PYTEST_ARGS)

system-deps:
	@bash scripts/install-system-deps.sh

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(LOCKED) requirements/build.txt

$(VENV)/.demo: pyproject.toml requirements/run.txt requirements/build.txt | $(VENV)/bin/python
	$(LOCKED) requirements/run.txt
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: pyproject.toml requirements/dev.txt requirements/build.txt | $(VENV)/bin/python system-deps
	$(LOCKED) requirements/dev.txt
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.demo

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check bargein tests bench examples

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy --strict bargein examples tests bench

pytest: $(VENV)/.dev
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The newest releases within pyproject.toml's ranges, in their own venv.
test-latest: system-deps
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools
	.venv-latest/bin/python -m pip install -q --disable-pip-version-check --upgrade -e '.[dev,audio]'
	.venv-latest/bin/python -m pip freeze --exclude-editable > .venv-latest/versions.txt
	$(MAKE) lint typecheck pytest VENV=.venv-latest

# The floors of pyproject.toml's ranges for bargein's dependencies and its audio extra (uv's
# lowest-direct resolution), over the locked test tools, in their own venv: a floor that no
# longer works fails here. (websockets' floor is 15 because openai[realtime] wants < 16.)
test-lowest: system-deps
	rm -rf .venv-lowest
	$(MAKE) .venv-lowest/.dev VENV=.venv-lowest
	.venv-lowest/bin/python -m pip install -q --disable-pip-version-check uv
	.venv-lowest/bin/uv pip compile -q --resolution lowest-direct --python-version 3.11 \
		pyproject.toml --extra audio -o .venv-lowest/lowest.txt
	.venv-lowest/bin/python -m pip install -q --disable-pip-version-check --no-deps \
		-r .venv-lowest/lowest.txt
	$(MAKE) pytest VENV=.venv-lowest

# Refresh the lock: the newest releases within pyproject.toml's ranges, for every platform
# (uv's universal resolution), with hashes. Commit requirements/ afterwards.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --disable-pip-version-check uv
	.venv-lock/bin/uv pip compile -q --universal --python-version 3.11 --generate-hashes \
		requirements/build.in -o requirements/build.txt
	.venv-lock/bin/uv pip compile -q --universal --python-version 3.11 --generate-hashes \
		pyproject.toml -o requirements/run.txt
	.venv-lock/bin/uv pip compile -q --universal --python-version 3.11 --generate-hashes \
		pyproject.toml --extra dev --extra audio -o requirements/dev.txt
	rm -rf .venv-lock

# The default machine, the shipped two-phase machines and every example machine
# (examples/machines/NAME.py defines NAME in capitals), each as Mermaid, SVG and a Markdown page.
MACHINES := thinking greeting tools confirm
SHIPPED := two_phase:TWO_PHASE_TABLE two_phase_server_vad:TWO_PHASE_SERVER_VAD_TABLE

diagrams: $(VENV)/.demo
	$(VENV)/bin/bargein diagram --format mermaid -o diagrams/conversation.mmd
	$(VENV)/bin/bargein diagram --format svg -o diagrams/conversation.svg
	$(VENV)/bin/bargein diagram --format md -o diagrams/conversation.md
	@for m in $(MACHINES); do \
		spec=examples.machines.$$m:$$(echo $$m | tr a-z A-Z); \
		$(VENV)/bin/bargein diagram --machine $$spec --format mermaid -o diagrams/$$m.mmd && \
		$(VENV)/bin/bargein diagram --machine $$spec --format svg -o diagrams/$$m.svg && \
		$(VENV)/bin/bargein diagram --machine $$spec --format md -o diagrams/$$m.md || exit 1; \
	done
	@for s in $(SHIPPED); do \
		m=$${s%%:*}; spec=bargein.states.two_phase:$${s#*:}; \
		$(VENV)/bin/bargein diagram --machine $$spec --format mermaid -o diagrams/$$m.mmd && \
		$(VENV)/bin/bargein diagram --machine $$spec --format svg -o diagrams/$$m.svg && \
		$(VENV)/bin/bargein diagram --machine $$spec --format md -o diagrams/$$m.md || exit 1; \
	done

bench: $(VENV)/.dev
	@for b in bench/bench_*.py bench/lab_room.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-latest .venv-lowest .venv-lock .mypy_cache .ruff_cache .pytest_cache
