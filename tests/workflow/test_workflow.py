"""The Snakemake workflow: DAG, bad input stopping before anything runs, lint, and the smoke profile
end to end (real Snakemake, real training, real files) in a temporary working directory."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tinlab.engine.config import RECIPES, base_for_frames, config_from_dict

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "workflow" / "config" / "smoke.yaml"


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def jobs_to_run(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run."""
    stats = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def test_dry_run_dag_of_the_default_and_smoke_profiles(tmp_path):
    default = snakemake(tmp_path, "-n", "-p", "results/table1.csv")
    assert default.returncode == 0, default.stderr
    jobs = jobs_to_run(default.stdout)
    # base_by_frames: the 16-frame jobs of every model train 30 epochs, the 8-frame ones 20.
    commands = [line for line in default.stdout.splitlines() if "tinlab train" in line]
    assert len(commands) == 10
    for line in commands:
        epochs = "30" if "num_segments=16" in line else "20"
        assert f"optim.epochs={epochs} " in line and "optim.warmup_epochs=1.0" in line, line
    # Table 1: 5 models x 2 frame counts, each trained and evaluated once; one dataset generated.
    assert jobs["train"] == 10 and jobs["evaluate"] == 10 and jobs["generate_synthetic_motion"] == 1
    assert "generate_synthetic_appearance" not in jobs and jobs["latency"] == 1
    # Table 5: 7 ablation rows x 3 seeds; the other seeds are named after them, seed 0 (the base seed) not.
    ablation = snakemake(tmp_path, "-n", "results/table5.csv")
    assert ablation.returncode == 0, ablation.stderr
    assert jobs_to_run(ablation.stdout)["train"] == 21
    names = set(re.findall(r"runs/(tin\S*_T8_synthetic-motion)/train_summary.json", ablation.stdout))
    assert len(names) == 21 and sum("-seed1_" in n for n in names) == 7 and sum("-seed2_" in n for n in names) == 7
    smoke = snakemake(tmp_path, "-n", "--configfile", str(SMOKE))
    assert smoke.returncode == 0, smoke.stderr
    jobs = jobs_to_run(smoke.stdout)
    # Tables 1, 2 and 5 share runs: 10 + 3 (appearance) + 5 (ablation rows, all with shift_div 2).
    assert jobs["train"] == 18 and jobs["all"] == 1 and jobs["summary"] == 1


def merged_profile(name: str) -> dict:
    """default.yaml with a profile merged over it key by key, as `snakemake --configfile` does."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "workflow" / "config" / "default.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "workflow" / "config" / f"{name}.yaml").read_text()))
    return config


def _leaves(tree: dict, prefix: str = "") -> set[str]:
    return set().union(*[_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
                         for k, v in tree.items()])


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_profiles_set_every_run_config_key_of_the_default_profile(profile):
    """Profiles extend default.yaml key by key: a base key a profile leaves out is silently inherited."""
    default = yaml.safe_load((REPO / "workflow" / "config" / "default.yaml").read_text())
    own = yaml.safe_load((REPO / "workflow" / "config" / f"{profile}.yaml").read_text())
    assert _leaves(default["base"]) - _leaves(own["base"]) == set()


def test_paper_profile_inherits_nothing_from_the_default_run_config():
    """A profile extends default.yaml: every training key the CPU profile sets must be reset by the paper
    profile, or Something-Something runs would silently train with the toy recipe."""
    config = merged_profile("paper")
    paper = RECIPES["paper"]
    for frames in (8, 16):
        run = config_from_dict(base_for_frames(config["base"], config.get("base_by_frames"), frames))
        assert {k: getattr(run.optim, k) for k in paper if k != "dropout"} == \
            {k: v for k, v in paper.items() if k != "dropout"}, frames
        assert (run.model.backbone, run.model.width_mult, run.data.input_size, run.run.device) == \
            ("resnet50", 1.0, 224, "cuda")
    # The ablation interlaces TIN's own quarter of the channels (the toy profile's shift_div 2 is reset).
    assert config["table5"]["options"] == {"shift_div": 4}


@pytest.mark.parametrize("override, message", [
    ("tabel1: {}", "tabel1"),
    ("table1: {dataset: synthetic-motion, models: [tsn, i3d], frames: [8]}", "i3d"),
    ("table1: {dataset: synthetic-motion, models: [tsn], frames: eight}", "eight"),
    ("table1: {dataset: kinetics, models: [tsn], frames: [8]}", "table1.dataset = 'kinetics'"),
    ("datasets: {something-v1: {root: /nonexistent/sth}}", "/nonexistent/sth"),
    ("base: {optim: {lrr: 0.1}}", "optim.lrr"),
    ("base_by_frames: {16: {optim: {epochs: -1}}}", "'optim.epochs' = -1"),
    ("base_by_frames: {16: {run: {seed: 3}}}", "base_by_frames.16.run.seed"),
])
def test_bad_config_stops_before_anything_runs(tmp_path, override, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override + "\n")
    out = snakemake(tmp_path, "-n", "--configfile", str(bad))
    assert out.returncode != 0
    assert message in out.stdout + out.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_lint_is_clean(tmp_path):
    out = snakemake(tmp_path, "--lint")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr


@pytest.mark.slow
def test_smoke_profile_end_to_end(tmp_path):
    start = time.perf_counter()
    out = snakemake(tmp_path, "--configfile", str(SMOKE), timeout=900)
    wall = time.perf_counter() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = tmp_path / "results"
    table1 = pd.read_csv(results / "table1.csv")
    assert sorted(table1.model.unique()) == ["rtcn", "tada", "tin", "tsm", "tsn"]
    assert sorted(table1.frames.unique()) == [4, 8] and table1.val_top1.between(0, 100).all()
    assert (table1.gflops > 0).all() and table1.latency_ms.notna().all()
    tsn, tsm = (table1[(table1.model == m) & (table1.frames == 4)].iloc[0] for m in ("tsn", "tsm"))
    assert tsn.params == tsm.params and tsn.gflops == tsm.gflops
    assert set(pd.read_csv(results / "table2.csv").dataset) == {"synthetic-motion", "synthetic-appearance"}
    table5 = pd.read_csv(results / "table5.csv")
    assert len(table5) == 5 and set(table5.boundary) == {"zero", "clamp"}
    assert pd.read_csv(results / "equivalence.csv").passed.all()
    for plot in ("accuracy_vs_gflops", "ablation", "offsets", "weights", "training_curves", "latency"):
        assert (results / "plots" / f"{plot}.png").stat().st_size > 1000, plot
    summary = (results / "README.md").read_text()
    assert "## table1" in summary and "![offsets](plots/offsets.png)" in summary
    prov = json.loads((results / "table1.csv.provenance.json").read_text())
    assert {"code_version", "torch", "python", "device"} <= set(prov)
    assert list((tmp_path / "benchmarks" / "train").glob("*.tsv")) and list((tmp_path / "logs").rglob("*.log"))
    assert list((results / "traces").glob("tin_T4/*.pt.trace.json"))
    print(f"smoke profile: {wall:.0f} s")

    # Accuracy/cost regression against the committed smoke reference (README: "Regression checks").
    # Smoke accuracies come from 6 validation videos after 1 epoch, so the tolerance is wide; params
    # and GFLOPs must match exactly and the equivalence cases must stay within bounds.
    check = subprocess.run([sys.executable, "-m", "tinlab", "regress", "--results", str(results), "--reference",
                            str(REPO / "results" / "reference" / "smoke"), "--tolerance", "40"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # A second invocation finds nothing to do.
    start = time.perf_counter()
    again = snakemake(tmp_path, "--configfile", str(SMOKE))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert time.perf_counter() - start < 30

    # Changing one model's option reruns that model's jobs (and the reports) only.
    (tmp_path / "tsm.yaml").write_text("model_options: {tsm: {shift_div: 4}}\n")
    changed = snakemake(tmp_path, "-n", "--configfile", str(SMOKE), str(tmp_path / "tsm.yaml"))
    jobs = jobs_to_run(changed.stdout)
    assert jobs["train"] == 3 and jobs["evaluate"] == 3  # tsm: T4 and T8 on motion, T4 on appearance
    assert "generate_synthetic_motion" not in jobs and "latency" not in jobs
