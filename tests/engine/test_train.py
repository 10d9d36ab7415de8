"""tinlab/engine/train.py: resume is bit-identical, runs are reproducible and idempotent, errors are clear."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tinlab.__main__ import main
from tinlab.engine.config import load_config
from tinlab.engine.train import (CHECKPOINT, SUMMARY, NonFiniteLossError, Trainer, frozen_batchnorms, lr_factor,
                                 train)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / CHECKPOINT, weights_only=False)["model"]


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def metrics_of(summary: dict) -> list:
    """Per-epoch losses and accuracies (timings excluded)."""
    return [(h["train"]["loss"], h["train"]["top1"], h["val"]) for h in summary["history"]]


@pytest.fixture(scope="module")
def tin_runs(tmp_path_factory, motion_root):
    """The same TIN config (dropout on: the RNG matters) trained straight, again, and interrupted+resumed."""
    cfg = load_config(None, ["model.name=tin", "model.backbone=resnet18", "model.width_mult=0.25",
                             "model.small_stem=true", f"data.root={motion_root}", "data.num_segments=4",
                             "data.input_size=32", "data.batch_size=4", "optim.epochs=2", "optim.lr=0.02",
                             "optim.bn=train", "model.dropout=0.5"])
    base = tmp_path_factory.mktemp("runs")
    straight = train(cfg, base / "straight")
    again = train(cfg, base / "again")
    stopped = train(cfg, base / "resumed", stop_after_epochs=1)
    after_one = weights(base / "resumed")
    resumed = train(cfg, base / "resumed")
    return dict(base=base, cfg=cfg, straight=straight, again=again, stopped=stopped, after_one=after_one,
                resumed=resumed)


def test_resume_is_bit_identical(tin_runs):
    base = tin_runs["base"]
    assert tin_runs["stopped"] == {"stopped": 1, "config_hash": tin_runs["straight"]["config_hash"]}
    # the interrupted run really stopped half-way: its weights then differ from the final ones
    assert any(not torch.equal(v, weights(base / "straight")[k]) for k, v in tin_runs["after_one"].items())
    assert_identical(weights(base / "straight"), weights(base / "resumed"))
    assert metrics_of(tin_runs["straight"]) == metrics_of(tin_runs["resumed"])
    assert tin_runs["straight"]["final"] == tin_runs["resumed"]["final"]


def test_two_identical_runs_are_identical(tin_runs):
    base = tin_runs["base"]
    assert_identical(weights(base / "straight"), weights(base / "again"))
    assert metrics_of(tin_runs["straight"]) == metrics_of(tin_runs["again"])
    # and training changed the weights at all (so "identical" is not trivially true)
    cfg = tin_runs["cfg"]
    fresh = Trainer(cfg).model.state_dict()
    assert not torch.equal(fresh["fc.weight"], weights(base / "straight")["fc.weight"])


def test_run_directory_contents(tin_runs):
    run = tin_runs["base"] / "straight"
    assert {"config.yaml", CHECKPOINT, SUMMARY, "model_best.pt", "tb"} <= {p.name for p in run.iterdir()}
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # no temporary files left behind
    state = torch.load(run / CHECKPOINT, weights_only=False)
    assert state["epoch"] == 2 and {"python", "numpy", "torch"} <= set(state["rng"])
    assert {"optimizer", "scheduler", "scaler", "best", "history", "config_hash"} <= set(state)
    summary = json.loads((run / SUMMARY).read_text())
    assert summary["config_hash"] == state["config_hash"] and summary["provenance"]["seed"] == 0
    offsets = summary["history"][0]["train"]["offsets"]
    assert len(offsets) == 8 and all(v > 0 for v in offsets.values())  # one per ResNet-18 block
    events = list((run / "tb").glob("events.out.tfevents.*"))
    assert events and sum(p.stat().st_size for p in events) > 0


def test_complete_run_is_not_retrained_unless_forced(tin_runs, capsys):
    run = tin_runs["base"] / "again"
    before = (run / CHECKPOINT).stat().st_mtime_ns
    assert train(tin_runs["cfg"], run)["history"] == tin_runs["again"]["history"]
    assert (run / CHECKPOINT).stat().st_mtime_ns == before
    other = load_config(None, ["optim.lr=0.5", f"data.root={tin_runs['cfg'].data.root}"])
    with pytest.raises(ValueError, match="finished run of another config"):
        train(other, run)


def test_force_retrains(tmp_path, write_config):
    config = write_config("tsn", optim={"epochs": 1})
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    first = (tmp_path / "r" / SUMMARY).stat().st_mtime_ns
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert (tmp_path / "r" / SUMMARY).stat().st_mtime_ns == first
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet", "--force"]) == 0
    assert (tmp_path / "r" / SUMMARY).stat().st_mtime_ns != first


def test_non_finite_loss_names_epoch_and_iteration(tmp_path, write_config, capsys):
    config = write_config("tsn", optim={"lr": 1.0e30})
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at epoch 0 iteration 1"):
        train(load_config(config), tmp_path / "nan")
    assert not (tmp_path / "nan" / CHECKPOINT).exists()
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "nan2"), "--quiet"]) == 1
    assert "non-finite loss" in capsys.readouterr().err


@pytest.mark.parametrize("override, code, message", [
    ("optim.lrr=0.1", 2, "unknown key 'optim.lrr'"),
    ("model.name=i3d", 2, "key 'model.name' = 'i3d'"),
    ("data.batch_size=four", 2, "key 'data.batch_size' must be int, got 'four'"),
    ("data.root=/no/such/folder", 1, "data.root = '/no/such/folder': dataset folder /no/such/folder does not exist"),
    ("model.options.colour=1", 2, "model.options {'colour': 1}"),
])
def test_bad_input_errors_name_file_key_value(tmp_path, write_config, capsys, override, code, message):
    config = write_config("tin")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--set", override, "--out", str(out), "--quiet"]) == code
    err = capsys.readouterr().err
    assert message in err and str(config) in err
    assert not (out / CHECKPOINT).exists()


def test_checkpoint_of_another_config_is_refused(tmp_path, write_config):
    config = write_config("tsn", optim={"epochs": 2})
    train(load_config(config), tmp_path / "r", stop_after_epochs=1)
    with pytest.raises(ValueError, match="written by another config"):
        train(load_config(config, ["optim.lr=0.02"]), tmp_path / "r")


def test_lr_schedules():
    paper = load_config(None).optim
    assert [lr_factor(e * 10, 10, paper) for e in (0, 9, 10, 19, 20, 24)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    official = load_config(None, ["optim.recipe=official"]).optim  # 1 warm-up epoch, cosine to 40
    assert lr_factor(0, 10, official) == pytest.approx(0.1) and lr_factor(9, 10, official) == pytest.approx(1)
    assert lr_factor(10, 10, official) == pytest.approx(1)
    assert lr_factor(10 + 195, 10, official) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(399, 10, official) < 1e-3


def test_bn_modes_and_fc_multipliers(write_config):
    cfg = load_config(write_config("tin"), ["optim.recipe=official", "optim.bn=partial"])
    trainer = Trainer(cfg)
    bns = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert trainer.frozen_bn == bns[1:] and bns[0].weight.requires_grad and not bns[1].weight.requires_grad
    trainer._set_train_mode()
    assert bns[0].training and not any(m.training for m in bns[1:])
    lrs = {g["name"]: (g["lr"], g["weight_decay"]) for g in trainer.optimizer.param_groups}
    warm = 1 / trainer.iters_per_epoch  # the warm-up's first step
    assert lrs["fc_weight"] == (pytest.approx(0.01 * 5 * warm), 5e-4) and lrs["weight"][1] == 5e-4
    assert lrs["fc_bias"] == (pytest.approx(0.01 * 10 * warm), 0.0) and lrs["no_decay"][1] == 0.0
    assert len(frozen_batchnorms(trainer.model, "frozen")) == len(bns)
