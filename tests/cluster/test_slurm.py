"""The workflow on a real one-node SLURM cluster (tests/cluster/slurm.sh): the smoke profile submitted through
workflow/profiles/slurm gives the local run's tables, a second run finds nothing to do, and a training job
cancelled with scancel resumes from its checkpoint when the workflow is rerun. `make test-slurm` (root:
the script installs slurm-wlm and munge with apt where missing and starts munged, slurmctld, slurmd)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from _snakemake import REPO, SMOKE, one_long_run_profile, snakemake  # noqa: E402

pytestmark = pytest.mark.slurm

SCRIPT = REPO / "tests" / "cluster" / "slurm.sh"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
# Costs and accuracies: equal on both sides (same code, seeds, threads). Timings differ.
TIMED = {"latency_ms", "latency_std_ms", "throughput", "train_s", "eval_s"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster's environment (SLURM_CONF) while it runs; stopped afterwards, whatever happens."""
    can = subprocess.run([str(SCRIPT), "can-run"], capture_output=True, text=True)
    assert can.returncode == 0, f"cannot start a SLURM cluster here: {can.stdout}{can.stderr}"
    folder = tmp_path_factory.mktemp("slurm")
    up = subprocess.run([str(SCRIPT), "up", str(folder)], capture_output=True, text=True, timeout=900)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield {"SLURM_CONF": str(folder / "slurm.conf")}
    finally:
        down = subprocess.run([str(SCRIPT), "down", str(folder)], capture_output=True, text=True, timeout=120)
        print(down.stdout + down.stderr)


def on_slurm(workdir: Path, env: dict, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    return snakemake(workdir, "--workflow-profile", str(PROFILE), *args, env=env, timeout=timeout)


def squeue(env: dict) -> list[list[str]]:
    """id, state, comment (the plugin's rule_<name>_wildcards_<...>) of every job SLURM still lists."""
    out = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T|%k"], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    return [line.split("|", 2) for line in out.stdout.splitlines()]


def comparable(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    return table.drop(columns=[c for c in table.columns if c in TIMED]).sort_values(list(table.columns[:3]))


def test_smoke_profile_on_slurm_matches_the_local_run(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    start = time.perf_counter()
    out = snakemake(local, "--configfile", str(SMOKE), timeout=900)
    local_s = time.perf_counter() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    before = {job[0] for job in squeue(cluster)}
    start = time.perf_counter()
    out = on_slurm(remote, cluster, "--configfile", str(SMOKE))
    slurm_s = time.perf_counter() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    print(f"smoke profile: local {local_s:.0f} s, SLURM {slurm_s:.0f} s")
    (tmp_path / "walltime.json").write_text(json.dumps({"local_s": local_s, "slurm_s": slurm_s}))

    # The jobs ran as SLURM jobs and completed: one per training run at least, none failed.
    jobs = [job for job in squeue(cluster) if job[0] not in before]
    trained = [job for job in jobs if job[2].startswith("rule_train_")]
    assert len(trained) == 14 and all(state == "COMPLETED" for _, state, _ in jobs), jobs  # 6 + 3 + 5 runs

    for table in ("table1", "table2", "table5", "complexity", "equivalence"):
        a, b = comparable(local / "results" / f"{table}.csv"), comparable(remote / "results" / f"{table}.csv")
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), obj=table)
    assert (remote / "results" / "README.md").is_file()
    for variant in ("tin_T4_synthetic-motion", "tsn_T4_synthetic-appearance"):
        a = torch.load(local / "results" / "runs" / variant / "checkpoint.pt", weights_only=True)["model"]
        b = torch.load(remote / "results" / "runs" / variant / "checkpoint.pt", weights_only=True)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), variant

    again = on_slurm(remote, cluster, "--configfile", str(SMOKE))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stderr[-2000:]


def test_a_cancelled_training_job_resumes_from_its_checkpoint(cluster, tmp_path):
    run = "results/runs/tsn_T4_synthetic-motion"
    one_long_run_profile(tmp_path, 30)
    args = ("results/table1.csv", "--configfile", str(tmp_path / "p.yaml"))

    environ = {**os.environ, **cluster, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    first = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                              "--cores", "2", "--workflow-profile", str(PROFILE), *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environ)
    try:
        deadline, epoch = time.monotonic() + 600, 0
        while epoch < 2 and time.monotonic() < deadline:  # a checkpoint after epoch 2 at least
            time.sleep(0.5)
            try:
                epoch = torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["epoch"]
            except Exception:  # not written yet, or being replaced
                pass
        assert epoch >= 2, "the training job wrote no checkpoint within 10 minutes"
        job = [j for j in squeue(cluster) if j[2].startswith("rule_train_") and j[1] == "RUNNING"]
        assert len(job) == 1, squeue(cluster)
        subprocess.run(["scancel", job[0][0]], check=True, env=environ)
        assert first.wait(300) != 0  # the workflow reports the cancelled job as failed
    finally:
        if first.poll() is None:
            first.kill()
    state = {j[0]: j[1] for j in squeue(cluster)}[job[0][0]]
    assert state == "CANCELLED", state
    cut = torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["epoch"]
    assert cut < 30 and not (tmp_path / run / "train_summary.json").exists()

    again = on_slurm(tmp_path, cluster, *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log = (tmp_path / "logs" / "train" / "tsn_T4_synthetic-motion.log").read_text()
    assert f"resuming {run} after epoch {cut}" in log, log
    summary = json.loads((tmp_path / run / "train_summary.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == list(range(1, 31))  # nothing lost, nothing repeated
    assert (tmp_path / "results" / "table1.csv").is_file()
