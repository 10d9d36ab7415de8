"""tinlab/engine/loop.py: divergence at any step or in validation stops the run, names where, marks it failed."""
from __future__ import annotations

import json

import pytest
import torch

from tinlab.__main__ import main
from tinlab.engine.callbacks import Callback
from tinlab.engine.config import load_config
from tinlab.engine.loop import Trainer
from tinlab.engine.train import train
from tinlab.errors import TrainingFailed


def test_non_finite_loss_names_epoch_and_iteration_and_marks_the_run_failed(tmp_path, write_config, capsys):
    config = write_config("tsn", optim={"lr": 1.0e30})
    with pytest.raises(TrainingFailed, match=r"non-finite loss \(loss nan.*\) at epoch 1 iteration 1"):
        train(load_config(config), tmp_path / "nan")
    assert not (tmp_path / "nan" / "checkpoint.pt").exists() and not (tmp_path / "nan" / "train_summary.json").exists()
    failed = json.loads((tmp_path / "nan" / "train_failed.json").read_text())
    assert failed["type"] == "TrainingFailed" and "iteration 1" in failed["error"]
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "nan2"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "non-finite loss" in err and len(err.strip().splitlines()) == 1


def _poison(trainer: Trainer, at_step: int, factor: float) -> None:
    """Multiply fc.weight's gradient by ``factor`` at global step ``at_step`` (the loss stays finite)."""
    calls = {"n": 0}

    def hook(grad):
        calls["n"] += 1
        return grad * factor if calls["n"] == at_step + 1 else grad

    trainer.model.fc.weight.register_hook(hook)


def test_non_finite_gradient_with_a_finite_loss_stops_before_the_step(write_config):
    trainer = Trainer(load_config(write_config("tsn", optim={"epochs": 1})))
    before = trainer.model.fc.weight.detach().clone()
    _poison(trainer, at_step=2, factor=float("inf"))
    with pytest.raises(TrainingFailed, match=r"non-finite gradient \(loss [0-9.]+, gradient norm inf\) at epoch 1 "
                                             r"iteration 2"):
        trainer.fit()
    assert torch.isfinite(trainer.model.fc.weight).all() and not torch.equal(before, trainer.model.fc.weight)


def test_divergence_seen_only_in_validation_stops_the_run(write_config):
    """Weights or BN statistics that went bad on the last step leave no later training loss to check:
    the validation loss catches them (before, such a run exited 0 with val loss NaN)."""

    class CorruptRunningStats(Callback):  # as an overflowing batch would leave them
        def on_train_end(self, trainer, epoch, stats):
            trainer.model.backbone.bn1.running_mean.fill_(float("nan"))

    trainer = Trainer(load_config(write_config("tsn", optim={"epochs": 1})), callbacks=[CorruptRunningStats()])
    with pytest.raises(TrainingFailed, match=r"non-finite validation loss \(nan\) after epoch 1"):
        trainer.fit()
