"""DDP: `tinlab train` under torchrun (2 gloo processes on CPU) matches a single-process run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinlab.engine.config import load_config
from tinlab.data import EpochRandomSampler
from tinlab.engine.train import CHECKPOINT, SUMMARY, train

ROOT = Path(__file__).resolve().parents[2]


def test_shards_cover_the_single_process_batches():
    single = EpochRandomSampler(16, seed=3)
    single.set_epoch(2)
    shards = []
    for rank in (0, 1):
        s = EpochRandomSampler(16, seed=3, rank=rank, world_size=2)
        s.set_epoch(2)
        shards.append(list(s))
    order = list(single)
    for step in range(4):  # global batch 4 = 2 per rank
        assert sorted(shards[0][2 * step:2 * step + 2] + shards[1][2 * step:2 * step + 2]) == \
            sorted(order[4 * step:4 * step + 4])
    val = [EpochRandomSampler(7, 0, r, 2, shuffle=False) for r in (0, 1)]
    assert sorted(list(val[0]) + list(val[1])) == list(range(7)) and [len(v) for v in val] == [4, 3]
    for r in (0, 1):  # 17 videos, 2 ranks: 8 each, the 17th dropped; len() agrees with iteration
        odd = EpochRandomSampler(17, 3, r, 2)
        assert len(odd) == len(list(odd)) == 8


@pytest.mark.slow
def test_torchrun_two_processes_match_single_process(tmp_path, write_config):
    # Frozen BN and no dropout: per-process BN statistics and dropout masks are the only legitimate
    # differences between 1 and 2 processes; everything else must agree up to float summation order.
    config = write_config("tin", optim={"epochs": 1, "bn": "frozen"}, model={"dropout": 0.0})
    single = train(load_config(config), tmp_path / "single")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "tinlab", "train", "--config", str(config), "--out", str(tmp_path / "ddp"), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / SUMMARY).read_text())
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["config_hash"] == single["config_hash"]
    a = torch.load(tmp_path / "single" / CHECKPOINT, weights_only=False)["model"]
    b = torch.load(tmp_path / "ddp" / CHECKPOINT, weights_only=False)["model"]
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst < 1e-4
    assert ddp["final"]["top1"] == single["final"]["top1"]
    assert ddp["final"]["loss"] == pytest.approx(single["final"]["loss"], rel=1e-4)
    assert ddp["history"][0]["train"]["loss"] == pytest.approx(single["history"][0]["train"]["loss"], rel=1e-4)
