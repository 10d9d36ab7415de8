"""A temporal module of your own (examples/tinlab-tea: one file, one decorator) appears in Table 1, the
complexity table and the latency table of the workflow without a line of tinlab edited: loaded by the
config's `plugins:` (docs/add-your-module.md's block, run as written), by TINLAB_PLUGINS, or by an entry point."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from _snakemake import REPO, SMOKE, jobs_to_run, snakemake

PLUGIN = REPO / "examples" / "tinlab-tea"


def readme_plugin_block() -> dict:
    """The YAML block of docs/add-your-module.md (before its design notes)."""
    section = (REPO / "docs" / "add-your-module.md").read_text().split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "docs/add-your-module.md shows one YAML block"
    return yaml.safe_load(blocks[0])


def plugin_profile(folder, **changes) -> str:
    profile = yaml.safe_load(SMOKE.read_text())
    profile.update(readme_plugin_block())  # as written: a path relative to the working folder
    profile["table1"]["models"] = ["tsn", "tsm", "tin", "tea"]  # "and add tea to table1.models"
    profile["latency"]["trace"] = False
    del profile["table2"], profile["table5"]
    profile.update(changes)
    (folder / "p.yaml").write_text(yaml.safe_dump(profile))
    return str(folder / "p.yaml")


@pytest.mark.slow
def test_the_documented_plugin_block_runs_through_the_workflow(tmp_path):
    (tmp_path / "examples").symlink_to(REPO / "examples")  # the block's path, from the working folder
    profile = plugin_profile(tmp_path)
    out = snakemake(tmp_path, "results/table1.csv", "results/complexity.csv", "--configfile", profile, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table1 = pd.read_csv(tmp_path / "results" / "table1.csv").set_index("model")
    assert list(table1.index) == ["tsn", "tsm", "tin", "tea"] and table1.loc["tea", "latency_ms"] > 0
    assert table1.loc["tea", "gflops"] > table1.loc["tsn", "gflops"] and table1.loc["tea", "params"] > table1.loc["tsn", "params"]
    complexity = pd.read_csv(tmp_path / "results" / "complexity.csv")
    tea, tsn = (complexity[complexity.model == m].iloc[0] for m in ("tea", "tsn"))
    assert tea.gflops > tsn.gflops
    latency = pd.read_csv(tmp_path / "results" / "latency.csv")
    tea_rows = latency[latency.name == "tea"]
    assert {"model", "op"} <= set(tea_rows.kind) and set(tea_rows.options) == {'{"reduction": 8}'}  # what trained
    assert "reduction8" in " ".join(p.name for p in (tmp_path / "results" / "runs").iterdir())  # the option
    assert "tinlab_tea.py" in (tmp_path / "results" / "table1.csv.provenance.json").read_text()  # recorded
    # without the plug-in, the same models stop the dry run before anything runs, naming the ways in
    bare = tmp_path / "bare"
    bare.mkdir()
    again = snakemake(bare, "-n", "results/table1.csv", "--configfile", plugin_profile(bare, plugins=[]))
    text = again.stdout + again.stderr
    assert again.returncode != 0 and "'tea'" in text and "plugins: [" in text and "TINLAB_PLUGINS" in text


def test_registering_a_module_reruns_the_complexity_table(tmp_path):
    """complexity.csv lists every registered model: a plug-in added to the config changes its command."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    profile = yaml.safe_load(SMOKE.read_text())
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    first = snakemake(tmp_path, "results/complexity.csv", "--configfile", str(tmp_path / "p.yaml"), timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "tea" not in set(pd.read_csv(tmp_path / "results" / "complexity.csv").model)
    profile["plugins"] = ["examples/tinlab-tea/tinlab_tea.py"]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    dry = snakemake(tmp_path, "-n", "results/complexity.csv", "--configfile", str(tmp_path / "p.yaml"))
    assert dry.returncode == 0 and jobs_to_run(dry.stdout).get("complexity") == 1, dry.stdout[-2000:]


def test_a_plugin_that_cannot_load_is_named_before_anything_runs(tmp_path):
    for plugins, expected in ((["nowhere/my_op.py"], "no such file"), (["no_such_module_xyz"], "no module"),
                              ([str(tmp_path / "broken.py")], "ZeroDivisionError")):
        (tmp_path / "broken.py").write_text("1 / 0\n")
        out = snakemake(tmp_path, "-n", "results/table1.csv", "--configfile", plugin_profile(tmp_path, plugins=plugins))
        text = out.stdout + out.stderr
        assert out.returncode != 0 and "config: plugins: plug-in" in text and expected in text, text[-2000:]
        assert "Traceback" not in text


def _models_seen(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", "import tinlab; print(tinlab.list_models())"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env}, cwd=REPO)


def test_tinlab_commands_load_the_plugins_named_in_the_environment():
    seen = _models_seen({"TINLAB_PLUGINS": "examples/tinlab-tea/tinlab_tea.py"})
    assert seen.returncode == 0 and "'tea'" in seen.stdout, seen.stderr
    bad = subprocess.run([sys.executable, "-m", "tinlab", "latency", "--models", "tsn"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TINLAB_PLUGINS": "examples/nothing.py"}, cwd=REPO)
    assert bad.returncode == 2 and "plug-in 'examples/nothing.py': no such file" in bad.stderr, bad.stderr[-2000:]
    assert "Traceback" not in bad.stderr


def test_an_installed_package_registers_through_its_entry_point(tmp_path):
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(PLUGIN)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    seen = _models_seen({"PYTHONPATH": str(site)})
    assert seen.returncode == 0 and "'tea'" in seen.stdout, seen.stderr
