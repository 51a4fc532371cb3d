# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
OUT    ?= demo-out

.PHONY: demo test bench install clean

$(BIN)/ionscope: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(BIN)/ionscope

install: $(BIN)/ionscope

demo: install
	$(BIN)/ionscope demo --out $(OUT)

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
