"""DDP: `tinlab train` under torchrun (2 gloo processes on CPU) matches a single-process run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinlab.data import ShardSampler, build_dataloader, set_epoch
from tinlab.engine.config import load_config
from tinlab.engine.train import train

CHECKPOINT, SUMMARY = "checkpoint.pt", "train_summary.json"

ROOT = Path(__file__).resolve().parents[2]


def _order(seed: int, epoch: int, length: int = 16, rank: int = 0, world: int = 1) -> list[int]:
    loader = build_dataloader(list(range(length)), 1, True, seed=seed, rank=rank, world_size=world)
    set_epoch(loader, epoch)
    return list(loader.sampler)


def test_shards_cover_the_single_process_batches():
    order = _order(3, 2)
    shards = [_order(3, 2, rank=r, world=2) for r in (0, 1)]
    for step in range(4):  # global batch 4 = 2 per rank
        assert sorted(shards[0][2 * step:2 * step + 2] + shards[1][2 * step:2 * step + 2]) == \
            sorted(order[4 * step:4 * step + 4])
    val = [ShardSampler(7, r, 2) for r in (0, 1)]
    assert sorted(list(val[0]) + list(val[1])) == list(range(7)) and [len(v) for v in val] == [4, 3]
    for r in (0, 1):  # 17 videos, 2 ranks: 8 each, the 17th dropped; len() agrees with iteration
        assert len(_order(3, 0, 17, r, 2)) == 8


def test_every_seed_and_epoch_has_its_own_order():
    """DistributedSampler draws epoch e of seed s from s + e: seeds 0 and 1 would train on the same orders
    one epoch apart, correlating runs meant to be independent. sampler_seed spreads the seeds."""
    orders = {(s, e): _order(s, e) for s in range(3) for e in range(3)}
    assert len({tuple(o) for o in orders.values()}) == len(orders)
    assert orders[(0, 1)] == _order(0, 1) and orders[(0, 1)] != orders[(0, 0)]  # reproducible, epoch-dependent


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
    a = torch.load(tmp_path / "single" / CHECKPOINT, weights_only=True)["model"]
    b = torch.load(tmp_path / "ddp" / CHECKPOINT, weights_only=True)["model"]
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst < 1e-4
    assert ddp["final"]["top1"] == single["final"]["top1"]
    assert ddp["final"]["loss"] == pytest.approx(single["final"]["loss"], rel=1e-4)
    assert ddp["history"][0]["train"]["loss"] == pytest.approx(single["history"][0]["train"]["loss"], rel=1e-4)
