"""A temporal module from an installed package (examples/tinlab-tea: one file, one entry point) appears
in Table 1, the complexity table and the latency table of the workflow without a line of tinlab edited."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from _snakemake import REPO, SMOKE, snakemake

PLUGIN = REPO / "examples" / "tinlab-tea"


@pytest.mark.slow
def test_the_example_plugin_runs_through_the_workflow(tmp_path):
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(PLUGIN)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    profile = yaml.safe_load(SMOKE.read_text())
    profile["table1"]["models"] = ["tsn", "tsm", "tin", "tea"]  # one config line
    profile["model_options"] = {"tea": {"reduction": 8}}  # options pass through, typed by its defaults
    profile["latency"]["trace"] = False
    del profile["table2"], profile["table5"]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    out = snakemake(tmp_path, "results/table1.csv", "results/complexity.csv", "--configfile", str(tmp_path / "p.yaml"),
                    env={"PYTHONPATH": str(site)}, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table1 = pd.read_csv(tmp_path / "results" / "table1.csv").set_index("model")
    assert list(table1.index) == ["tsn", "tsm", "tin", "tea"] and table1.loc["tea", "latency_ms"] > 0
    assert table1.loc["tea", "gflops"] > table1.loc["tsn", "gflops"] and table1.loc["tea", "params"] > table1.loc["tsn", "params"]
    complexity = pd.read_csv(tmp_path / "results" / "complexity.csv")
    tea, tsn = (complexity[complexity.model == m].iloc[0] for m in ("tea", "tsn"))
    assert tea.gflops > tsn.gflops
    latency = pd.read_csv(tmp_path / "results" / "latency.csv")
    assert {"model", "op"} <= set(latency[latency.name == "tea"].kind)
    assert "reduction8" in " ".join(p.name for p in (tmp_path / "results" / "runs").iterdir())  # the option
    # without the plug-in on the path, a config naming it stops before anything runs, listing what exists
    again = snakemake(tmp_path / "bare", "-n", "results/table1.csv", "--configfile", str(tmp_path / "p.yaml"))
    assert again.returncode != 0 and "tea" in again.stdout + again.stderr and "registered" in again.stdout + again.stderr
