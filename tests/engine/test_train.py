"""tinlab/engine/train.py: resume is bit-identical, runs are reproducible and idempotent, errors are clear."""
from __future__ import annotations

import json
import re
import os
import shutil
from pathlib import Path

import pytest
import torch

from tinlab.__main__ import main
from tinlab.engine.config import config_hash, load_config
from tinlab.engine.loop import Trainer
from tinlab.engine.train import train
from tinlab.errors import RunFolderError

CHECKPOINT, SUMMARY = "checkpoint.pt", "train_summary.json"


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / CHECKPOINT, weights_only=True)["model"]


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
    state = torch.load(run / CHECKPOINT, weights_only=True)  # tensors, numbers and strings only
    assert state["epoch"] == 2 and len(state["rng"]) == 1 and {"python", "numpy", "torch"} <= set(state["rng"][0])
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
    with pytest.raises(RunFolderError, match="holds a run of another config"):
        train(other, run)


def test_force_retrains(tmp_path, write_config):
    config = write_config("tsn", optim={"epochs": 1})
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    first = (tmp_path / "r" / SUMMARY).stat().st_mtime_ns
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert (tmp_path / "r" / SUMMARY).stat().st_mtime_ns == first
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet", "--force"]) == 0
    assert (tmp_path / "r" / SUMMARY).stat().st_mtime_ns != first


@pytest.mark.parametrize("override, code, message", [
    ("optim.lrr=0.1", 2, "unknown key 'optim.lrr'"),
    ("model.name=i3d", 2, "key 'model.name' = 'i3d'"),
    ("data.batch_size=four", 2, "key 'data.batch_size' must be int, got 'four'"),
    ("data.root=/no/such/folder", 2, "data.root = '/no/such/folder': dataset folder /no/such/folder does not exist"),
    ("model.options.colour=1", 2, "unknown key 'model.options.colour' for model 'tin'"),
    ("model.options.groups=two", 2, "key 'model.options.groups' must be int like its default 2, got 'two'"),
    ("model.options.groups=3", 2, "model.options {'groups': 3} for model 'tin'"),
    ("optim.lr=.nan", 2, "key 'optim.lr' = nan is not valid"),
])
def test_bad_input_errors_name_file_key_value(tmp_path, write_config, capsys, override, code, message):
    config = write_config("tin")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--set", override, "--out", str(out), "--quiet"]) == code
    err = capsys.readouterr().err
    assert message in err and str(config) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err  # one line for the user
    assert not (out / CHECKPOINT).exists()


def test_checkpoint_of_another_config_is_refused(tmp_path, write_config):
    config = write_config("tsn", optim={"epochs": 2})
    train(load_config(config), tmp_path / "r", stop_after_epochs=1)
    changed = load_config(config, ["optim.lr=0.02"])
    with pytest.raises(RunFolderError, match="holds a run of another config"):
        train(changed, tmp_path / "r")
    summary = train(changed, tmp_path / "r", restart_if_changed=True)  # what the workflow asks: start over
    assert [h["epoch"] for h in summary["history"]] == [1, 2]  # from scratch, not resumed at epoch 1
    assert torch.load(tmp_path / "r" / CHECKPOINT, weights_only=True)["config_hash"] == config_hash(changed)




def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot create anything in (root ignores permission bits: use sysfs)."""
    if os.geteuid() == 0:
        return Path("/sys/tinlab-run")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    return locked / "run"


@pytest.mark.parametrize("args, message", [
    (["--set", "optim.milestones=[1,"], "override 'optim.milestones=[1,': not valid YAML"),
    (["--set", "run.device=cuda"], "run.device = 'cuda' but no CUDA device is available"),
    (["--set", "optim.weight_decay=-1"], "key 'optim.weight_decay' = -1.0 is not valid"),
    (["--set", "data.input_size=1"], "key 'data.input_size' = 1 is not valid; expected a finite number in [16, 4096]"),
])
def test_more_user_errors_are_one_line(tmp_path, write_config, capsys, args, message):
    if "cuda" in message and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["train", "--config", str(write_config("tsn")), *args, "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_unwritable_out_folder_is_one_line(tmp_path, write_config, capsys):
    out = _unwritable(tmp_path)
    assert main(["train", "--config", str(write_config("tsn")), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and ("Permission denied" in err or "not permitted" in err) and "Traceback" not in err


def test_a_missing_frame_stops_training_before_the_first_epoch(tmp_path, write_config, motion_root, capsys):
    data = Path(shutil.copytree(motion_root, tmp_path / "data"))
    video, frames, _ = (data / "train.txt").read_text().splitlines()[-1].split()
    (data / "frames" / video / f"{int(frames):05d}.jpg").unlink()  # the last frame of the last video
    config = write_config("tsn", data={"root": str(data)})
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"missing frame {data / 'frames' / video / f'{int(frames):05d}.jpg'}" in err and "train.txt:16" in err
    assert not (tmp_path / "r" / CHECKPOINT).exists()  # stopped before epoch 0, not when first sampled


def test_a_training_log_can_be_followed_line_by_line(write_config, tmp_path, capsys):
    """What a workflow job writes to logs/train/<variant>.log: a line per epoch with accuracies in percent
    and the time left, and within an epoch a line every --log-every seconds."""
    config = write_config("tsn", optim={"epochs": 2}, run={"validate_every": 1})
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--log-every", "0.000001"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^epoch 1/2 iteration 1/\d+: loss [0-9.]+ lr [0-9.e-]+ \([0-9.]+ clips/s, epoch ends in \d+ s\)$",
                     out, re.M), out
    assert re.search(r"^epoch 2/2: loss [0-9.]+ train top-1 [0-9.]+% val top-1 [0-9.]+% val loss [0-9.]+ "
                     r"\([0-9.]+ clips/s; run ends in 0 s\)$", out, re.M), out
    assert re.search(r"final val top-1 [0-9.]+%$", out, re.M)
    # TensorBoard speaks the same units: accuracies in percent, tagged so
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "r" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/top1_percent", "train/top1_percent", "train/loss"} <= tags and "val/top1" not in tags
    summary = json.loads((tmp_path / "r" / "train_summary.json").read_text())
    last = events.Scalars("val/top1_percent")[-1].value
    assert last == pytest.approx(100 * summary["history"][-1]["val"]["top1"], abs=1e-3)


@pytest.mark.parametrize("args", [["--stop-after-epochs", "0"], ["--stop-after-epochs", "-1"], ["--log-every", "0"]])
def test_counts_that_mean_nothing_are_refused_not_reinterpreted(write_config, tmp_path, args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(write_config("tsn")), "--out", str(tmp_path / "r"), *args])
    assert exit_.value.code == 2 and "must be" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
