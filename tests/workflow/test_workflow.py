"""The Snakemake workflow: DAG, bad input stopping before anything runs, lint, and the smoke profile
end to end (real Snakemake, real training, real files) in a temporary working directory."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from _snakemake import REPO, SMOKE, jobs_to_run, snakemake

from tinlab.engine.config import RECIPES, base_for_frames, config_from_dict


def run_config_of(workdir: Path, variant: str, *args: str) -> dict:
    """The run config the workflow writes for one training job (rule run_config, cheap: no data needed)."""
    target = f"results/runs/configs/{variant}.yaml"
    out = snakemake(workdir, target, *args)
    assert out.returncode == 0, out.stderr[-2000:]
    return yaml.safe_load((workdir / target).read_text())


def test_dry_run_dag_of_the_default_and_smoke_profiles(tmp_path):
    default = snakemake(tmp_path, "-n", "results/table1.csv")
    assert default.returncode == 0, default.stderr
    jobs = jobs_to_run(default.stdout)
    # Table 1: 6 models x 2 frame counts x 3 seeds, each with its run config, trained and evaluated once.
    assert jobs["train"] == 36 and jobs["evaluate"] == 36 and jobs["run_config"] == 36
    assert jobs["generate_synthetic_motion"] == 1 and "generate_synthetic_appearance" not in jobs and jobs["latency"] == 1
    # One recipe for every model (base_by_frames: 24 epochs at 16 frames, 16 at 8); the run config carries the
    # seed and the thread count.
    for variant, seed, epochs in (("tin_T16_synthetic-motion", 0, 24), ("tsn-seed2_T8_synthetic-motion", 2, 16)):
        cfg = run_config_of(tmp_path, variant)
        assert (cfg["optim"]["epochs"], cfg["optim"]["warmup_epochs"], cfg["optim"]["schedule"]) == \
            (epochs, 2.0, "cosine"), variant
        assert (cfg["run"]["seed"], cfg["run"]["threads"]) == (seed, 1), variant
    # Table 5: 7 ablation rows x 3 seeds; the other seeds are named after them, seed 0 (the base seed) not.
    ablation = snakemake(tmp_path, "-n", "results/table5.csv")
    assert ablation.returncode == 0, ablation.stderr
    assert jobs_to_run(ablation.stdout)["train"] == 21
    names = set(re.findall(r"runs/(tin\S*_T8_synthetic-motion)/train_summary.json", ablation.stdout))
    assert len(names) == 21 and sum("-seed1_" in n for n in names) == 7 and sum("-seed2_" in n for n in names) == 7
    smoke = snakemake(tmp_path, "-n", "--configfile", str(SMOKE))
    assert smoke.returncode == 0, smoke.stderr
    jobs = jobs_to_run(smoke.stdout)
    # Tables 1, 2 and 5 share runs: 6 + 3 (appearance) + 5 (ablation rows, all with shift_div 2).
    assert jobs["train"] == 14 and jobs["all"] == 1 and jobs["summary"] == 1


def test_a_profile_replaces_the_default_and_inherits_nothing(tmp_path):
    """`--configfile P` replaces default.yaml: a key P leaves out takes the schema's or the recipe's value,
    never the default profile's (before, profiles had to set every inherited key back to null)."""
    profile = yaml.safe_load(SMOKE.read_text())
    profile["table1"]["frames"] = [16]
    del profile["latency"], profile["resources"]  # schema defaults apply
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    cfg = run_config_of(tmp_path, "tin_T16_synthetic-motion", "--configfile", str(tmp_path / "p.yaml"))
    assert cfg["optim"]["epochs"] == 1  # the profile's own; default.yaml's base_by_frames says 24
    assert cfg["optim"]["warmup_epochs"] == 0.0  # the paper recipe's; default.yaml's base says 2.0
    assert cfg["data"]["root"] == "data/smoke/synthetic-motion"


def test_the_paper_profile_trains_the_paper_recipe():
    config = yaml.safe_load((REPO / "workflow" / "config" / "paper.yaml").read_text())
    paper = RECIPES["paper"]
    for frames in (8, 16):
        run = config_from_dict(base_for_frames(config["base"], config.get("base_by_frames"), frames))
        assert {k: getattr(run.optim, k) for k in paper if k != "dropout"} == \
            {k: v for k, v in paper.items() if k != "dropout"}, frames
        assert (run.model.backbone, run.model.width_mult, run.data.input_size, run.run.device) == \
            ("resnet50", 1.0, 224, "cuda")
    assert "options" not in config["table5"]  # the ablation interlaces TIN's own quarter of the channels


def test_only_the_datasets_the_targets_need_must_exist(tmp_path):
    """Table 1 on Something-Something V1 needs V1 alone: a configured but absent Jester stops only the
    targets that train on it, naming the key, before anything runs."""
    sth = tmp_path / "sth"
    sth.mkdir()
    (sth / "val_videofolder.txt").write_text("v 8 0\n")
    profile = yaml.safe_load((REPO / "workflow" / "config" / "paper.yaml").read_text())
    profile["datasets"] = {"something-v1": {"root": str(sth), "preset": {"frame_dir": ""}},
                           "jester": {"root": str(tmp_path / "no-jester"), "preset": {"frame_dir": ""}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    table1 = snakemake(tmp_path, "-n", "results/table1.csv", "--configfile", str(tmp_path / "p.yaml"))
    assert table1.returncode == 0, table1.stderr[-2000:]
    table2 = snakemake(tmp_path, "-n", "results/table2.csv", "--configfile", str(tmp_path / "p.yaml"))
    assert table2.returncode != 0 and f"datasets.jester.root = '{tmp_path / 'no-jester'}'" in table2.stdout + table2.stderr


@pytest.mark.parametrize("override, message", [
    ("tabel1: {}", "tabel1"),
    ("table1: {dataset: synthetic-motion, models: [tsn, i3d], frames: [8]}", "i3d"),
    ("table1: {dataset: synthetic-motion, models: [tsn], frames: eight}", "eight"),
    ("table1: {dataset: kinetics, models: [tsn], frames: [8]}", "table1.dataset = 'kinetics'"),
    ("base: {optim: {lrr: 0.1}}", "optim.lrr"),
    ("base: {optim: {lr: .nan}}", "'optim.lr' = nan"),
    ("base_by_frames: {4: {optim: {epochs: -1}}}", "'optim.epochs' = -1"),
    ("base_by_frames: {16: {run: {seed: 3}}}", "base_by_frames.16.run.seed"),
    ("model_options: {tsm: {shift_div: 8}, i3d: {}}", "model_options.i3d"),
    ("model_options: {tsm: {shift_dvi: 4}}", "model.options.shift_dvi"),
    ("experiment: a\nexperiment: b", "duplicate key 'experiment'"),
    # each module's own rules, checked by building it (meta device), not at training time
    ("model_options: {tin: {offset_range: 0.01}}", "offset_range must be > 0.5"),
    ("model_options: {tin: {groups: 3}}", "cannot be built"),
    ("model_options: {tadav2: {cal_dim: both}}", "cal_dim = 'both' is not valid"),
    ("model_options: {tsm: {shift_div: 1}}", "TSM needs shift_div >= 2"),
])
def test_bad_config_stops_before_anything_runs(tmp_path, override, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override + "\n")
    out = snakemake(tmp_path, "-n", "--configfile", str(SMOKE), str(bad))
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
    assert sorted(table1.model.unique()) == ["rtcn", "tada", "tadav2", "tin", "tsm", "tsn"]
    assert sorted(table1.frames.unique()) == [4] and table1.val_top1.between(0, 100).all()
    assert (table1.gflops > 0).all() and table1.latency_ms.notna().all()
    tsn, tsm = (table1[(table1.model == m) & (table1.frames == 4)].iloc[0] for m in ("tsn", "tsm"))
    assert tsn.params == tsm.params and tsn.gflops == tsm.gflops
    assert set(pd.read_csv(results / "table2.csv").dataset) == {"synthetic-motion", "synthetic-appearance"}
    table5 = pd.read_csv(results / "table5.csv")
    assert len(table5) == 5 and set(table5.boundary) == {"zero", "clamp"}
    assert pd.read_csv(results / "equivalence.csv").passed.all()
    # Intervals on every accuracy; per-video predictions beside every metrics JSON; the paired comparisons:
    # Table 1 (5 models vs TSN, 4 vs TSM, TIN vs r-TCN), Table 2 (per dataset, 2 vs TSN and TIN vs TSM),
    # Table 5 (4 rows vs the default row).
    assert (table1.val_top1_lo <= table1.val_top1).all() and (table1.val_top1 <= table1.val_top1_hi).all()
    assert len(pd.read_csv(tmp_path / "results/runs/tin_T4_synthetic-motion/metrics.predictions.csv")) == 6
    comparisons = pd.read_csv(results / "comparisons.csv")
    # Table 1 also has the negative control, TIN against r-TCN. One seed per row: no directional verdict.
    assert comparisons.groupby("table").size().to_dict() == {"table1": 10, "table2": 6, "table5": 4}
    assert comparisons[comparisons.control][["model", "reference"]].values.tolist() == [["tin", "rtcn"]]
    assert comparisons.p_mcnemar.between(0, 1).all() and comparisons.p_holm.isna().all()
    assert set(comparisons.verdict) == {"no verdict: one run, training noise unmeasured"}
    assert "## comparisons" in (results / "README.md").read_text()
    for plot in ("accuracy_vs_gflops", "ablation", "offsets", "weights", "training_curves", "latency"):
        assert (results / "plots" / f"{plot}.png").stat().st_size > 1000, plot
    summary = (results / "README.md").read_text()
    assert "## table1" in summary and "![offsets](plots/offsets.png)" in summary
    prov = json.loads((results / "table1.csv.provenance.json").read_text())
    assert {"code_version", "torch", "python", "device"} <= set(prov)
    assert list((tmp_path / "benchmarks" / "train").glob("*.tsv")) and list((tmp_path / "logs").rglob("*.log"))
    assert list((results / "traces").glob("tin_T4/*.pt.trace.json"))
    print(f"smoke profile: {wall:.0f} s")

    # Cost regression against the committed smoke reference: params and GFLOPs exactly, equivalence in
    # bounds. Accuracies after 1 epoch on 6 validation videos are noise (tolerance 100: not compared); the
    # accuracy check is the ci profile's (tests/workflow/test_regression_check.py).
    check = subprocess.run([sys.executable, "-m", "tinlab", "regress", "--results", str(results), "--reference",
                            str(REPO / "results" / "reference" / "smoke"), "--tolerance", "100",
                            "--require", "table1", "table2", "table5", "complexity", "equivalence"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # The run config is the whole recipe, thread count included: trained by hand from the file the workflow
    # wrote (in a shell where torch would otherwise take every core), TIN's run is bit-identical.
    variant = "tin_T4_synthetic-motion"
    config = tmp_path / "results/runs/configs" / f"{variant}.yaml"
    assert yaml.safe_load(config.read_text())["run"]["threads"] == 1
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    by_hand = subprocess.run([sys.executable, "-m", "tinlab", "train", "--config", str(config), "--out", "hand",
                              "--quiet"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert by_hand.returncode == 0, by_hand.stderr
    ours, theirs = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["model"]
                    for d in ("hand", f"results/runs/{variant}"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    hand = json.loads((tmp_path / "hand" / "train_summary.json").read_text())
    assert hand["provenance"]["threads"] == 1 and hand["provenance"]["config"]["run"]["threads"] == 1

    # A second invocation finds nothing to do.
    start = time.perf_counter()
    again = snakemake(tmp_path, "--configfile", str(SMOKE))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert time.perf_counter() - start < 30

    # Changing one model's option reruns that model's jobs, the latency of the models Table 1 trained (the
    # option changes what is timed) and the reports; nothing else.
    (tmp_path / "tsm.yaml").write_text("model_options: {tsm: {shift_div: 4}}\n")
    changed = snakemake(tmp_path, "-n", "--configfile", str(SMOKE), str(tmp_path / "tsm.yaml"))
    jobs = jobs_to_run(changed.stdout)
    assert jobs["train"] == 2 and jobs["evaluate"] == 2  # tsm: T4 on motion and on appearance
    assert jobs["latency"] == 1 and '"shift_div": 4' in changed.stdout  # --model-options in the command
    assert "generate_synthetic_motion" not in jobs and "complexity" not in jobs


def test_a_run_that_diverges_is_a_row_of_table1_not_a_failed_workflow(tmp_path):
    """lr 1e30: both runs go non-finite at their second step. The workflow completes; Table 1 has both rows
    with their GFLOPs and parameters and "diverged at epoch 1 (loss)" in place of accuracies, and the
    comparison gives no verdict."""
    profile = yaml.safe_load(SMOKE.read_text())
    profile.update(table1={"dataset": "synthetic-motion", "models": ["tsn", "tin"], "frames": [4]},
                   latency={"rounds": 1, "warmup": 0, "modes": ["infer"], "trace": False, "threads": 1})
    profile["base"]["optim"].update(lr=1.0e30)
    for table in ("table2", "table5"):
        del profile[table]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    out = snakemake(tmp_path, "results/table1.csv", "results/comparisons.csv", "--configfile", str(tmp_path / "p.yaml"))
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "table1.csv").set_index("model")
    assert list(table.diverged) == ["seed 0: diverged at epoch 1 (loss)"] * 2
    assert table.val_top1.isna().all() and (table.gflops > 0).all() and (table.params > 0).all()
    summary = json.loads((tmp_path / "results" / "runs" / "tin_T4_synthetic-motion" / "train_summary.json").read_text())
    assert summary["diverged"]["iteration"] == 1
    comparisons = pd.read_csv(tmp_path / "results" / "comparisons.csv")
    assert set(comparisons.verdict) == {"no verdict: tin and tsn diverged"}
