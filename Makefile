# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
# `make docs` builds the documentation site (executing every tutorial) into docs/_build/html.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
OUT    ?= demo-out

.PHONY: demo test test-slow bench docs install clean

$(BIN)/ionscope: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(BIN)/ionscope

install: $(BIN)/ionscope

demo: install
	$(BIN)/ionscope demo --out $(OUT)

# `make test`: the fast tier (every test not marked slow, doctests included; about 10 min on 2 cores: 9.6–10.4 min in the 2026-12-07 night CI runs).
# `make test-slow`: the slow tier only (fault injection in child processes, repeated full runs, the README
# run top to bottom). CI (.ci/run) runs both.
test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

# -E: read every page again (every tutorial re-executed); -W: every warning is an error. IONSCOPE_REAL_DATA: the real
# files the tutorial on your own files reads (default ../shared/data/real; the build stops if absent).
docs: install
	$(BIN)/python -m pip install -q -e '.[docs]'
	rm -rf docs/_build/html docs/api
	$(BIN)/python -m sphinx -E -W --keep-going -b html docs docs/_build/html
	$(BIN)/python docs/check_site.py docs/_build/html
	@echo "docs: open docs/_build/html/index.html (offline: every script and style sheet is local)"

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache docs/_build docs/api docs/jupyter_execute
