"""The accuracy regression check that CI runs: the ci profile's Table 1 against its committed reference
(results/reference/ci, tolerances from the measured seed-to-seed spread), once as is (it must pass) and
once with two planted regressions, TSM's temporal shift made the identity and TIN harmed by about 10 points
(it must fail, naming those two rows)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from _snakemake import REPO, snakemake

CI = REPO / "workflow" / "config" / "ci.yaml"
REFERENCE = REPO / "results" / "reference" / "ci"
TSM_RUN = "results/runs/tsm_T8_synthetic-motion"


def regress(results: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinlab", "regress", "--results", str(results), "--reference",
                           str(REFERENCE), "--require", "table1"], capture_output=True, text=True)


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("ci")
    out = snakemake(workdir, "results/table1.csv", "--configfile", str(CI), timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_the_ci_experiment_separates_temporal_models_and_matches_its_reference(ci_run):
    table = pd.read_csv(ci_run / "results" / "table1.csv").set_index("model")
    assert table.loc["tsn", "pair_accuracy"] < 60  # frame order invisible: near chance (50)
    assert table.loc[["tsm", "tin"], "pair_accuracy"].min() > 80
    check = regress(ci_run / "results")
    assert check.returncode == 0, check.stdout + check.stderr


# About 10 points of top-1 off TIN under the default recipe (measured over seeds, results/reference/ci/README.md):
# offsets confined to (-0.6, 0.6) frames, so no group can look a whole frame away.
TIN_HARM = "model_options: {tin: {offset_range: 0.6}}\n"


@pytest.mark.slow
def test_planted_regressions_fail_the_check_naming_their_rows(ci_run, tmp_path):
    """Two regressions planted at once: TSM with its shift disabled (a sitecustomize in the jobs' PYTHONPATH
    patches the op to the identity; its run folder and the table removed), and TIN harmed by an option (a
    new run name). Only those two runs are retrained, and regress must fail on both rows, on no other."""
    planted = Path(shutil.copytree(ci_run, tmp_path / "planted", symlinks=True))
    shutil.rmtree(planted / TSM_RUN)
    (planted / "results" / "table1.csv").unlink()  # Snakemake keeps a present target whose inputs went missing
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent("""
        import tinlab.ops.tsm
        tinlab.ops.tsm.TemporalShift.forward = lambda self, x: x  # planted: TSM without its temporal shift
    """))
    (tmp_path / "harm.yaml").write_text(TIN_HARM)
    out = snakemake(planted, "results/table1.csv", "--configfile", str(CI), str(tmp_path / "harm.yaml"),
                    env={"PYTHONPATH": str(hook)}, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert f"{TSM_RUN}/train_summary.json" in log and "tin-offset_range0.6_T8_synthetic-motion/train_summary.json" in log
    assert "tsn_T8_synthetic-motion/train_summary.json" not in log
    check = regress(planted / "results")
    assert check.returncode == 1, check.stdout + check.stderr
    flagged = [line for line in check.stdout.splitlines() if "REGRESSION" in line]
    assert {line.split(",")[0].split("model=")[1] for line in flagged} == {"tsm", "tin"}, check.stdout
    assert any("model=tin" in line and "val_top1" in line for line in flagged), check.stdout
    assert any("model=tsm" in line and "pair_accuracy" in line for line in flagged), check.stdout
