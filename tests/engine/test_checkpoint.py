"""tinlab/engine/checkpoint.py: run-folder lock, orphan temporaries, and checkpoints that cannot run code."""
from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
import torch

from tinlab.__main__ import main
from tinlab.engine.checkpoint import RunFolder
from tinlab.engine.config import load_config
from tinlab.engine.train import train
from tinlab.errors import CheckpointError, RunFolderError
from tinlab.utils.io import load_tensors, remove_orphans


class Payload:
    """Unpickling this runs code: it creates a marker file (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def hostile(path: Path, marker: Path, wrap: bool = True) -> Path:
    model = torch.nn.Linear(2, 2).state_dict()
    torch.save({"model": {**model, "x": Payload(marker)}, "epoch": 1, "format": 2} if wrap else Payload(marker), path)
    assert not marker.exists()
    return path


def test_a_hostile_checkpoint_is_refused_on_resume_evaluate_and_pretrained(tmp_path, write_config, capsys):
    marker = tmp_path / "code-ran"
    run = tmp_path / "run"
    run.mkdir()
    hostile(run / "checkpoint.pt", marker)
    config = write_config("tsn", optim={"epochs": 1})
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 2  # resume
    evil = hostile(tmp_path / "evil.pt", marker)
    assert main(["evaluate", "--config", str(config), "--checkpoint", str(evil), "--out", str(tmp_path / "m.json")]) == 2
    assert main(["train", "--config", str(config), "--set", f"model.pretrained={evil}", "--out",
                 str(tmp_path / "pre"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all("refused: it holds pickled Python objects" in line for line in err)
    assert str(run / "checkpoint.pt") in err[0] and str(evil) in err[1] and str(evil) in err[2]
    assert not marker.exists(), "unpickling ran code"


@pytest.mark.parametrize("damage", ["truncate", "empty", "text"])
def test_a_corrupt_checkpoint_names_the_file(tmp_path, damage):
    path = tmp_path / "c.pt"
    torch.save({"w": torch.ones(1000)}, path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "empty": b"", "text": b"not a checkpoint\n"}[damage])
    with pytest.raises(CheckpointError, match=f"{path}: not a readable checkpoint"):
        load_tensors(path)


def _hold(path: str, seconds: float) -> None:
    with RunFolder(path).lock():
        time.sleep(seconds)


def test_a_second_process_is_refused_while_the_first_holds_the_folder(tmp_path):
    folder = tmp_path / "run"
    holder = multiprocessing.get_context("fork").Process(target=_hold, args=(str(folder), 30))
    holder.start()
    try:
        for _ in range(100):  # wait until the holder wrote its pid
            if (folder / ".lock").exists() and (folder / ".lock").read_text().strip():
                break
            time.sleep(0.05)
        with pytest.raises(RunFolderError, match=f"in use by another tinlab train \\(pid {holder.pid}\\)"):
            with RunFolder(folder).lock():
                pass
    finally:
        holder.kill()
        holder.join()
    with RunFolder(folder).lock():  # a killed holder leaves no stale lock
        pass


def test_out_that_is_a_file_is_a_clear_error(tmp_path, write_config, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", "--config", str(write_config("tsn")), "--out", str(tmp_path / "file"), "--quiet"]) == 2
    assert "is a file, not a run folder" in capsys.readouterr().err


def test_orphan_temporaries_of_killed_writes_are_removed_on_the_next_start(tmp_path, write_config):
    run = tmp_path / "run"
    run.mkdir()
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a pid that surely has no process any more
    orphan = run / f".checkpoint.pt.{dead}.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    live = run / f".checkpoint.pt.{os.getppid()}.def456.tmp"  # a running writer's file is kept
    live.write_bytes(b"being written")
    train(load_config(write_config("tsn", optim={"epochs": 1})), run)
    assert not orphan.exists() and live.exists()


def test_evaluate_refuses_an_unfinished_run_unless_asked(tmp_path, write_config, capsys):
    run = tmp_path / "run"
    train(load_config(write_config("tsn", optim={"epochs": 2})), run, stop_after_epochs=1)
    assert main(["evaluate", "--run", str(run)]) == 2
    assert "has not finished training" in capsys.readouterr().err and not (run / "metrics.json").exists()
    assert main(["evaluate", "--run", str(run), "--allow-unfinished"]) == 0
    import json
    assert json.loads((run / "metrics.json").read_text())["finished"] is False


def test_an_unresumable_checkpoint_is_named_and_the_workflow_restarts_it(tmp_path, write_config):
    """A checkpoint of an earlier tinlab (format 1: numpy RNG state) or a damaged one: a clear refusal by
    hand, a fresh start under --restart-if-changed (what the workflow passes)."""
    import numpy as np

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": 1, "config_hash": "x", "rng": {"numpy": np.random.get_state()}}, run / "checkpoint.pt")
    cfg = load_config(write_config("tsn", optim={"epochs": 1}))
    with pytest.raises(RunFolderError, match="earlier tinlab \\(format 1\\) or a damaged one cannot be resumed: retrain"):
        train(cfg, run)
    assert train(cfg, run, restart_if_changed=True)["epochs"] == 1


def test_resume_reads_the_checkpoint_on_the_cpu(tmp_path, write_config, monkeypatch):
    """RNG states must stay on the CPU: a checkpoint mapped to the training device (as before, on a GPU)
    made the resume fail. Here the device is 'meta' for the load: only a CPU load passes."""
    from tinlab.engine import train as train_module
    from tinlab.engine.loop import Trainer

    cfg = load_config(write_config("tsn", optim={"epochs": 2}))
    train(cfg, tmp_path / "r", stop_after_epochs=1)
    trainer = Trainer(cfg)
    trainer.device = torch.device("meta")  # what a load with map_location=trainer.device would use
    start, history, best, versions = train_module._resume(trainer, RunFolder(tmp_path / "r"), "unused")
    assert start == 1 and len(history) == 1


def test_orphan_names_that_are_no_pid_are_kept(tmp_path):
    huge = tmp_path / f".table.csv.{10 ** 30}.abc.tmp"
    huge.write_text("x")
    assert remove_orphans(tmp_path) == [] and huge.exists()


def test_a_run_refused_after_taking_the_lock_leaves_no_folder_behind(tmp_path, write_config, capsys):
    """The lock is taken before the model and data are built: a refusal there must not leave a folder
    holding only `.lock` (which a workflow would then mistake for a started run). A folder the user made
    beforehand is kept."""
    bad = write_config("tsn", data={"root": str(tmp_path / "no-such-dataset")})
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "no-such-dataset" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    (tmp_path / "mine").mkdir()
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "mine"), "--quiet"]) == 2
    assert (tmp_path / "mine").is_dir()


def test_a_full_disk_while_checkpointing_is_one_line_and_the_run_resumes(tmp_path, write_config, capsys,
                                                                         monkeypatch):
    """ENOSPC in the middle of torch.save (which wraps it in a RuntimeError of its zip writer): one error
    naming the file, train_failed.json, the previous checkpoint intact, and a rerun resumes to the same
    weights as a run that never stopped."""
    import tempfile

    import tinlab.utils.io as io

    config = write_config("tsn", optim={"epochs": 2})
    real_mkstemp, calls = tempfile.mkstemp, []

    def full_after_the_first_checkpoint(*args, prefix="", **kwargs):
        fd, name = real_mkstemp(*args, prefix=prefix, **kwargs)
        if prefix.startswith(".checkpoint.pt."):
            calls.append(name)
            if len(calls) > 1:  # the second checkpoint lands on a full disk
                os.close(fd)
                fd = os.open("/dev/full", os.O_WRONLY)
        return fd, name

    monkeypatch.setattr(io.tempfile, "mkstemp", full_after_the_first_checkpoint)
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "checkpoint.pt" in err and "intact" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (run / "train_failed.json").is_file() and torch.load(run / "checkpoint.pt")["epoch"] == 1
    assert not list(run.glob(".*.tmp"))
    monkeypatch.setattr(io.tempfile, "mkstemp", real_mkstemp)
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0  # resumes
    assert not (run / "train_failed.json").exists()
    straight = tmp_path / "straight"
    assert main(["train", "--config", str(config), "--out", str(straight), "--quiet"]) == 0
    a, b = torch.load(run / "checkpoint.pt")["model"], torch.load(straight / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_full_disk_while_writing_a_table_keeps_its_previous_provenance(tmp_path, monkeypatch):
    import json
    import tempfile

    import pandas as pd

    import tinlab.utils.io as io

    out = tmp_path / "t.csv"
    io.write_csv(pd.DataFrame({"a": [1]}), out, {"version": 1})
    real_mkstemp = tempfile.mkstemp

    def full_for_csv(*args, prefix="", **kwargs):
        fd, name = real_mkstemp(*args, prefix=prefix, **kwargs)
        if prefix.startswith(".t.csv.") and not prefix.startswith(".t.csv.provenance"):
            os.close(fd)
            fd = os.open("/dev/full", os.O_WRONLY)
        return fd, name

    monkeypatch.setattr(io.tempfile, "mkstemp", full_for_csv)
    with pytest.raises(OSError, match="No space left on device"):
        io.write_csv(pd.DataFrame({"a": [2]}), out, {"version": 2})
    assert json.loads((tmp_path / "t.csv.provenance.json").read_text()) == {"version": 1}
    with pytest.raises(OSError, match="No space left on device"):
        io.write_csv(pd.DataFrame({"a": [2]}), tmp_path / "new" / "t.csv", {"version": 2})
    assert not (tmp_path / "new" / "t.csv.provenance.json").exists()  # no orphan sidecar
