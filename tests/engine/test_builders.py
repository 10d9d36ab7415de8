"""tinlab/engine/builders.py: schedules, BN modes and parameter groups from a config."""
from __future__ import annotations

import pytest
import torch

from tinlab.engine.builders import frozen_batchnorms, lr_factor
from tinlab.engine.config import load_config
from tinlab.engine.loop import Trainer


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
    # the official TIN recipe: OffsetNet / WeightNet biases at twice the learning rate, no decay
    assert lrs["bias"] == (pytest.approx(0.01 * 2 * warm), 0.0)
    groups = {g["name"]: {id(p) for p in g["params"]} for g in trainer.optimizer.param_groups}
    tin = next(m for _, m in trainer.model.interlace_modules())
    nets = [tin.offset_net.conv.bias, tin.offset_net.fc1.bias, tin.offset_net.fc2.bias, tin.weight_net.conv.bias]
    assert all(id(b) in groups["bias"] for b in nets) and id(tin.offset_net.fc1.weight) in groups["weight"]
    assert load_config(None).optim.bias_lr_mult == 1.0  # the paper recipe: 1x


def test_only_the_trunks_batchnorms_are_frozen():
    """A temporal module's own BatchNorms start untrained: freezing them at their initialisation (TAda's
    BN_z, a plug-in's zero-initialised BN) would switch the module off."""
    import tinlab

    tada = tinlab.create_model("tada", backbone="resnet50", num_classes=4, width_mult=0.25)
    frozen = {id(m) for m in frozen_batchnorms(tada, "frozen")}
    temporal = [m for n, m in tada.named_modules() if n.endswith(".temporal")]
    assert temporal and not any(id(m) in frozen for m in temporal)
    assert id(tada.backbone.layer1[0].bn2) in frozen and id(tada.backbone.layer2[0].downsample[1]) in frozen


def test_validation_every_n_epochs_records_only_what_was_measured(write_config):
    trainer = Trainer(load_config(write_config("tsn", optim={"epochs": 3}, run={"validate_every": 2})))
    result = trainer.fit()
    assert [bool(h["val"]) for h in result["history"]] == [False, True, True]  # epochs 2 and 3 (the last)
    assert result["final"] == result["history"][-1]["val"]
