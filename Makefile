# The two commands of the README. Each one sets up .venv (once, again when pyproject.toml changes)
# and then runs. PYTHON picks the interpreter that creates the venv (3.10 or newer).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; GPU users: `make TORCH_SPEC=torch ...` or install torch first (README).
TORCH_SPEC ?= torch==2.13.0

.PHONY: main all equivalence complexity test bench-compare ratios clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all]"
	touch $@

# The main job: the paper's Table 1 for the default experiment (embedded synthetic data, CPU).
main: $(VENV)/.installed
	$(VENV)/bin/snakemake --cores all results/table1.csv

# Every table, plot and results/README.md of the default experiment.
all: $(VENV)/.installed
	$(VENV)/bin/snakemake --cores all

# Operator/model speed: the baseline-free ratio check, and pytest-benchmark against the stored baseline.
ratios: $(VENV)/.installed
	$(PY) bench/ratios.py --models --check

bench-compare: $(VENV)/.installed
	$(PY) -m pytest bench --benchmark-only --benchmark-storage=file://bench/baselines \
		--benchmark-compare=0001 --benchmark-compare-fail=median:25%

equivalence: $(VENV)/.installed
	$(PY) -m tinlab equivalence --out results/equivalence.csv

complexity: $(VENV)/.installed
	$(PY) -m tinlab complexity --out results/complexity.csv

test: $(VENV)/.installed
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)
