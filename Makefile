# The two commands of the README. Each one sets up .venv (once, again when pyproject.toml changes)
# and then runs. PYTHON picks the interpreter that creates the venv (3.10 or newer).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; GPU users: `make TORCH_SPEC=torch ...` or install torch first (README).
TORCH_SPEC ?= torch==2.13.0

.PHONY: main equivalence complexity test clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all]"
	touch $@

# The main job. Until the Snakemake workflow lands it is the TIN == r-TCN equivalence report.
main: equivalence

equivalence: $(VENV)/.installed
	$(PY) -m tinlab equivalence --out results/equivalence.csv

complexity: $(VENV)/.installed
	$(PY) -m tinlab complexity --out results/complexity.csv

test: $(VENV)/.installed
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)
