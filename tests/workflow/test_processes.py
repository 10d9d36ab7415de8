"""resources.processes_per_run: the workflow's training job runs torchrun with N processes (2 gloo processes
on CPU here), and its checkpoint matches a one-process run of the same run config (as tests/engine/test_ddp.py
demands of torchrun by hand)."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from _snakemake import SMOKE, jobs_to_run, snakemake

from tinlab.engine.config import load_config
from tinlab.engine.train import train

VARIANT = "tin_T4_synthetic-motion"


@pytest.mark.slow
def test_two_processes_per_run_from_the_workflow_match_one(tmp_path, monkeypatch):
    profile = yaml.safe_load(SMOKE.read_text())
    # Frozen BN and no dropout: per-process BN statistics and dropout masks are the only legitimate
    # differences between 1 and 2 processes.
    profile["base"]["optim"]["bn"] = "frozen"
    profile["base"]["model"]["dropout"] = 0.0
    profile["resources"]["processes_per_run"] = 2
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    target = f"results/runs/{VARIANT}/train_summary.json"

    dry = snakemake(tmp_path, "-n", "-p", target, "--configfile", str(tmp_path / "p.yaml"))
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert jobs_to_run(dry.stdout)["train"] == 1
    assert "torch.distributed.run --standalone --nproc_per_node 2 -m tinlab train" in dry.stdout
    assert "threads: 2" in dry.stdout and "mem_mb=2000" in dry.stdout  # 2 x train_threads, 2 x train_mem_mb

    out = snakemake(tmp_path, target, "--configfile", str(tmp_path / "p.yaml"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    ddp = json.loads((tmp_path / target).read_text())
    assert ddp["world_size"] == 2

    monkeypatch.chdir(tmp_path)  # the run config names the data relative to the workflow's directory
    single = train(load_config(tmp_path / f"results/runs/configs/{VARIANT}.yaml"), tmp_path / "single")
    assert single["world_size"] == 1 and ddp["config_hash"] == single["config_hash"]
    a = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / f"results/runs/{VARIANT}/checkpoint.pt", weights_only=True)["model"]
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst < 1e-4
    assert ddp["final"]["top1"] == single["final"]["top1"]
    assert ddp["final"]["loss"] == pytest.approx(single["final"]["loss"], rel=1e-4)
