# The two commands of the README. Each one sets up .venv (once, again when pyproject.toml changes)
# and then runs. PYTHON picks the interpreter that creates the venv (3.10 or newer).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The workflow's jobs run `python -m tinlab ...`: the venv comes first on PATH, as if activated.
SNAKEMAKE := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/snakemake
# The CPU build of torch; GPU users: `make TORCH_SPEC=torch ...` or install torch first (README).
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup main probes all equivalence complexity test test-compile test-slurm gpu-check bench-compare ratios clean-venv

# setup.py builds the fused TIN kernel (tinlab/ops/csrc/interlace.c) into the install: rebuild when it changes.
$(VENV)/.installed: pyproject.toml setup.py tinlab/ops/csrc/interlace.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all]"
	touch $@

# Install only (.venv with everything the other targets need); `make main` and `make test` do it first anyway.
setup: $(VENV)/.installed

# The main job: the paper's Table 1 for the default experiment (embedded synthetic data, CPU). Run again
# after an interruption, it redoes the interrupted jobs (a training resumes from its last epoch).
main: $(VENV)/.installed
	$(SNAKEMAKE) --cores all --rerun-incomplete results/table1.csv

# The capability table of the temporal probes (docs/probes.md): results/probes.csv and its heat map.
probes: $(VENV)/.installed
	$(SNAKEMAKE) --cores all --rerun-incomplete results/probes.csv results/plots/probes.png

# Every table, plot and results/README.md of the default experiment.
all: $(VENV)/.installed
	$(SNAKEMAKE) --cores all --rerun-incomplete

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

# torch.compile (CPU inductor) of every model: no graph break, the same output (minutes).
test-compile: $(VENV)/.installed
	$(PY) -m pytest -m compile

# The workflow on a real one-node SLURM cluster that tests/cluster/slurm.sh starts and stops (root; it
# installs slurm-wlm and munge with apt where missing): smoke profile vs local run, scancel + resume (minutes).
test-slurm: $(VENV)/.installed
	$(PY) -m pytest -m slurm tests/cluster -s

# On a machine with a CUDA GPU: the CUDA tests, op ratios, latency/throughput of the R50 models, a short
# AMP training run of each model; results/reference/gpu/*.csv (docs/gpus-and-clusters.md: "GPUs and clusters").
gpu-check: $(VENV)/.installed
	$(PY) bench/gpu_check.py --out results/reference/gpu

clean-venv:
	rm -rf $(VENV)
