"""A workflow interrupted (Ctrl-C) or killed hard (kill -9) resumes with the README's commands, and the
training job it cut short resumes from its last epoch checkpoint, losing nothing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tinlab.engine.checkpoint import RunFolder
from tinlab.errors import RunFolderError

from _snakemake import REPO, one_long_run_profile, snakemake

RUN = "results/runs/tsn_T4_synthetic-motion"


def _interruptible() -> None:
    """In the child, before exec: SIGINT back to its default. A shell starts background commands with SIGINT
    ignored, and a Python started with SIGINT ignored keeps ignoring it; so under `make test &` (or any
    runner that does that) the Ctrl-C below reached nobody, the workflow ran to the end and exited 0 (the
    flaky failure). As from a terminal, Snakemake and its jobs now get a KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(workdir: Path, profile: Path) -> subprocess.Popen:
    """`make main`'s command (--rerun-incomplete), in its own process group, in the background."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    return subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                             "--cores", "2", "--rerun-incomplete", "results/table1.csv", "--configfile", str(profile)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
                            preexec_fn=_interruptible)


def _wait_for_epoch(workdir: Path, after: int, timeout: float = 300) -> int:
    """Block until the run's checkpoint holds more than ``after`` epochs; return how many."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            epoch = torch.load(workdir / RUN / "checkpoint.pt", weights_only=True)["epoch"]
            if epoch > after:
                return epoch
        except Exception:  # not written yet, or being replaced
            pass
        time.sleep(0.2)
    raise TimeoutError(f"no checkpoint after epoch {after} within {timeout} s")


def _wait_until_free(workdir: Path, timeout: float = 120) -> None:
    """Block until no training process holds the run folder (the interrupted one has exited)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with RunFolder(workdir / RUN).lock():
                return
        except RunFolderError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.slow
def test_interrupted_and_killed_workflows_resume(tmp_path):
    one_long_run_profile(tmp_path, 40)

    first = _start(tmp_path, tmp_path / "p.yaml")  # Ctrl-C: snakemake stops its jobs and cleans up
    _wait_for_epoch(tmp_path, 0)
    os.killpg(first.pid, signal.SIGINT)
    assert first.wait(120) != 0
    _wait_until_free(tmp_path)
    # Where the interrupted training stopped: on a loaded machine it may finish another epoch between the
    # read above and the SIGINT, and that epoch must not be taken for the second run's progress (the
    # second run would then be killed before Snakemake took its lock).
    cut = torch.load(tmp_path / RUN / "checkpoint.pt", weights_only=True)["epoch"]

    second = _start(tmp_path, tmp_path / "p.yaml")  # kill -9 of everything: snakemake's lock stays behind
    cut = _wait_for_epoch(tmp_path, cut)  # only the second run's training can move it now
    os.killpg(second.pid, signal.SIGKILL)
    second.wait(60)
    assert (tmp_path / ".snakemake" / "locks").exists() and any((tmp_path / ".snakemake" / "locks").iterdir())

    unlock = snakemake(tmp_path, "--unlock", "--configfile", str(tmp_path / "p.yaml"))  # README: after kill -9
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    third = _start(tmp_path, tmp_path / "p.yaml")
    assert third.wait(600) == 0
    log = (tmp_path / "logs" / "train" / "tsn_T4_synthetic-motion.log").read_text()
    assert f"resuming {RUN} after epoch" in log, log
    summary = json.loads((tmp_path / RUN / "train_summary.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == list(range(1, 41))  # nothing lost, nothing repeated
    assert (tmp_path / "results" / "table1.csv").is_file()
    assert not list((tmp_path / RUN).glob(".*.tmp"))
