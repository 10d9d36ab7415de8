"""bench/gpu_check.py (make gpu-check) keeps working where no GPU is: its CPU mode at toy sizes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import tinlab

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_every_step_on_the_cpu(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--quick",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ratios = pd.read_csv(tmp_path / "op_ratios.csv")
    assert {"interlace_fwd/copy_fwd", "tin_fwd/tsm_fwd", "copy_bandwidth_gb_s"} <= set(ratios.quantity)
    models = pd.read_csv(tmp_path / "models.csv")
    assert set(models.model) == {"tsn", "tsm", "tin"} and set(models.measure) == {"latency", "throughput", "train"}
    assert (models[models.measure == "train"].clips_per_s > 0).all()
    assert list(pd.read_csv(tmp_path / "training.csv").model) == tinlab.list_models() and (tmp_path / "models.csv.provenance.json").is_file()
    assert any((tmp_path / "traces").rglob("*.pt.trace.json"))
    nogpu = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--out", str(tmp_path / "x")],
                           capture_output=True, text=True)
    assert nogpu.returncode == 2 and "no CUDA GPU here" in nogpu.stderr
