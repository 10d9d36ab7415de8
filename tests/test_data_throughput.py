"""bench/data_throughput.py keeps working: every format, mode and measure at toy size, and the loader
sizing from a gpu-check table."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


@pytest.mark.slow
def test_data_throughput_at_toy_size(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "bench" / "data_throughput.py"), "--out", str(tmp_path / "d.csv"),
                          "--sizes", "default", "--segments", "8", "--videos", "2", "--frames", "12", "--rounds", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    table = pd.read_csv(tmp_path / "d.csv")
    assert set(table["format"]) == {"frames", "mp4", "webm"} and set(table["mode"]) == {"train", "test"}
    assert (table[["decode_ms", "decode_native_ms", "read_ms", "item_ms", "loader_clips_per_s"]] > 0).all().all()
    assert (table.ratio - table.item_ms / table.decode_ms).abs().max() < 1e-2
    assert (tmp_path / "d.csv.provenance.json").is_file()


def test_workers_needed_rounds_up():
    from data_throughput import workers_needed

    gpu = pd.DataFrame([{"model": "tsm", "measure": "train", "backbone": "resnet50", "frames": 8, "clips_per_s": 250.0},
                        {"model": "tsm", "measure": "latency", "backbone": "resnet50", "frames": 8, "clips_per_s": 1e4}])
    paper = pd.DataFrame([{"mode": "train", "frames": 8, "format": "mp4", "loader_clips_per_s": 20.0},
                          {"mode": "test", "frames": 8, "format": "mp4", "loader_clips_per_s": 1.0},
                          {"mode": "train", "frames": 16, "format": "mp4", "loader_clips_per_s": 1.0}])
    assert workers_needed(gpu, paper).to_dict("records") == [
        {"model": "tsm", "frames": 8, "format": "mp4", "gpu_train_clips_per_s": 250.0, "worker_clips_per_s": 20.0,
         "workers": 13}]
