"""tinlab/engine/config.py: validation errors name file, key and value; recipes; overrides; hash."""
from __future__ import annotations

import pytest

from tinlab.engine.config import RECIPES, ConfigError, base_for_frames, config_hash, dump_config, load_config


def test_recipes_fill_every_null_field():
    paper, official = load_config(None), load_config(None, ["optim.recipe=official"])
    assert (paper.optim.lr, paper.optim.milestones, paper.optim.epochs, paper.optim.bn) == (0.005, [10, 20], 25, "frozen")
    assert paper.model.dropout == 0.5 and paper.optim.schedule == "step" and paper.optim.clip_grad == 0
    assert (official.optim.schedule, official.optim.warmup_epochs, official.optim.clip_grad) == ("cosine", 1.0, 20.0)
    assert (official.optim.bn, official.optim.fc_lr_mult_weight, official.optim.fc_lr_mult_bias) == ("partial", 5, 10)
    assert official.model.dropout == 0.8
    # an explicit value wins over the recipe
    assert load_config(None, ["optim.recipe=official", "optim.lr=0.1"]).optim.lr == 0.1


def test_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: tsm\n  options: {shift_div: 4}\noptim:\n  milestones: [3, 5]\n")
    cfg = load_config(path, ["data.batch_size=2", "optim.lr=1e-3", "model.options.shift_div=16"])
    assert cfg.model.name == "tsm" and cfg.model.options == {"shift_div": 16}
    assert cfg.optim.milestones == [3, 5] and cfg.data.batch_size == 2 and cfg.optim.lr == 1e-3
    assert load_config(path, ["optim.lr=1e30"]).optim.lr == 1e30  # YAML 1.1 would read a string


@pytest.mark.parametrize("text, override, expected", [
    ("optim:\n  lrr: 0.1\n", [], "c.yaml: unknown key 'optim.lrr'"),
    ("model:\n  name: tin\n", ["data.bogus.deep=1"], "unknown key 'data.bogus'"),
    ("colour: red\n", [], "c.yaml: unknown key 'colour'"),
    ("data:\n  batch_size: eight\n", [], "key 'data.batch_size' must be int, got 'eight'"),
    ("data:\n  batch_size: 2.5\n", [], "key 'data.batch_size' must be int, got 2.5"),
    ("run:\n  amp: 1\n", [], "key 'run.amp' must be bool, got 1"),
    ("optim:\n  milestones: [1, x]\n", [], "key 'optim.milestones[1]' must be int, got 'x'"),
    ("model:\n  name: i3d\n", [], "key 'model.name' = 'i3d' is not valid"),
    ("optim:\n  recipe: fast\n", [], "key 'optim.recipe' = 'fast' is not valid"),
    ("data:\n  dataset: imagenet\n", [], "key 'data.dataset' = 'imagenet'"),
    ("optim:\n  bn: sync\n", [], "key 'optim.bn' = 'sync'"),
    ("model: [1, 2]\n", [], "'model' must be a mapping"),
    ("", ["optim.lr=-1"], "key 'optim.lr' = -1.0 is not valid"),
    ("optim:\n  lr: .nan\n", [], "key 'optim.lr' = nan is not valid; expected a finite number in (0, ∞)"),
    ("optim:\n  lr: .inf\n", [], "key 'optim.lr' = inf is not valid"),
    ("", ["optim.momentum=-1"], "key 'optim.momentum' = -1.0 is not valid; expected a finite number in [0, 1)"),
    ("", ["optim.weight_decay=-1"], "key 'optim.weight_decay' = -1.0 is not valid"),
    ("", ["optim.milestones=[5, 3]"], "key 'optim.milestones' = [5, 3] is not valid; expected increasing epochs"),
    ("", ["optim.warmup_epochs=50"], "key 'optim.warmup_epochs' = 50.0 is not valid; expected a finite number in [0, 25]"),
    ("data:\n  input_size: 1\n", [], "key 'data.input_size' = 1 is not valid"),
    ("", ["run.seed=-1"], "key 'run.seed' = -1 is not valid"),
    ("", ["data.test_crops=4"], "key 'data.test_crops' = 4 is not valid; expected one of [1, 3, 5, 10]"),
    ("model:\n  name: tsm\n  options: {shift_div: 8.5}\n", [], "key 'model.options.shift_div' must be int"),
    ("model:\n  name: tsn\n  options: {shift_div: 8}\n", [], "unknown key 'model.options.shift_div' for model 'tsn'"),
    ("optim:\n  lr: 0.1\n  lr: 0.2\n", [], "duplicate key 'lr'"),
])
def test_errors_name_file_key_and_value(tmp_path, text, override, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path, override)
    assert expected in str(e.value) and str(path) in str(e.value)


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config("nope.yaml")
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        load_config(None, ["optim.lr"])


def test_hash_ignores_out_only_and_dump_round_trips(tmp_path):
    base = load_config(None)
    assert config_hash(base) == config_hash(load_config(None, ["run.out=/elsewhere"]))
    assert config_hash(base) != config_hash(load_config(None, ["optim.lr=0.0051"]))
    path = tmp_path / "dumped.yaml"
    path.write_text(dump_config(base))
    assert config_hash(load_config(path)) == config_hash(base)
    assert set(RECIPES["paper"]) == set(RECIPES["official"])


def test_base_for_frames_merges_the_entry_of_those_frames_only():
    base = {"optim": {"epochs": 20, "lr": 0.02, "milestones": [14, 18]}, "run": {"seed": 0}}
    by_frames = {16: {"optim": {"epochs": 30, "milestones": [22, 27]}}, "32": {"optim": {"lr": None}}}
    assert base_for_frames(base, by_frames, 8) == base
    assert base_for_frames(base, by_frames, 16) == {"optim": {"epochs": 30, "lr": 0.02, "milestones": [22, 27]},
                                                    "run": {"seed": 0}}
    assert base_for_frames(base, by_frames, 32)["optim"]["lr"] is None  # None replaces (= the recipe's value)
    assert base["optim"]["epochs"] == 20  # the input is not modified
    with pytest.raises(ConfigError, match="key 'sixteen' is not a number of frames"):
        base_for_frames(base, {"sixteen": {}}, 16)
    with pytest.raises(ConfigError, match=r"base_by_frames\.16: expected a mapping"):
        base_for_frames(base, {16: 30}, 16)
    for bad in (16.5, True, 0):
        with pytest.raises(ConfigError, match="is not a number of frames"):
            base_for_frames(base, {bad: {}}, 16)
    with pytest.raises(ConfigError, match="16 frames appear twice"):
        base_for_frames(base, {16: {"optim": {"epochs": 30}}, "16": {"optim": {"lr": 0.1}}}, 16)


def test_a_float_written_without_a_dot_in_a_yaml_file_is_the_number(tmp_path):
    """PyYAML (YAML 1.1) reads 1e-2 as the string '1e-2'; where the config expects a number it means 0.01,
    as it does in a --set override (before, the file was refused and the override accepted)."""
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: tin, options: {offset_range: 3e0}}\noptim: {lr: 1e-2, weight_decay: 5E-4}\n")
    cfg = load_config(path)
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.model.options["offset_range"]) == (0.01, 5e-4, 3.0)
    path.write_text("optim: {lr: one}\n")
    with pytest.raises(ConfigError, match="key 'optim.lr' must be float, got 'one'"):
        load_config(path)
