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
    out = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--dry-run", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ratios = pd.read_csv(tmp_path / "op_ratios.csv")
    assert {"interlace_kernel_fwd/copy_fwd", "interlace_op_fwd/copy_fwd", "tin_fwd/tsm_fwd",
            "copy_bandwidth_gb_s"} <= set(ratios.quantity)
    models = pd.read_csv(tmp_path / "models.csv")
    assert set(models.model) == {"tsn", "tsm", "tin"} and set(models.measure) == {"latency", "throughput", "train"}
    assert (models[models.measure == "train"].clips_per_s > 0).all()
    assert list(pd.read_csv(tmp_path / "training.csv").model) == tinlab.list_models() and (tmp_path / "models.csv.provenance.json").is_file()
    assert any((tmp_path / "traces").rglob("*.pt.trace.json"))
    nogpu = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--out", str(tmp_path / "x")],
                           capture_output=True, text=True)
    assert nogpu.returncode == 2 and "CPU build" in nogpu.stderr and "TORCH_SPEC" in nogpu.stderr  # this torch
    tight = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--quick",
                            "--budget-s", "0", "--out", str(tmp_path / "tight")], capture_output=True, text=True,
                           timeout=600)
    assert tight.returncode == 1 and "op ratios skipped: past the 0 s budget" in tight.stderr


def test_the_gpu_targets_are_judged_on_the_kernel_and_the_cuda_graphs():
    """Eager batch-1 latency is host launch time: the TIN/TSM target reads the CUDA-graph rows; the bandwidth
    target the kernel row, not the ~25-op interlace() around it; a diverged or flat training run is named."""
    sys.path.insert(0, str(REPO / "bench"))
    import gpu_check

    ratios = pd.DataFrame({"quantity": ["interlace_kernel_fwd/copy_fwd", "interlace_op_fwd/copy_fwd"],
                           "ratio": [1.2, 9.0]})
    rows = [{"measure": m, "model": n, "compiled": c, "median_ms": ms}
            for m in ("latency", "throughput")
            for n, c, ms in (("tsm", False, 10.0), ("tin", False, 20.0), ("tsm", True, 5.0), ("tin", True, 5.2))]
    assert gpu_check.targets(ratios, pd.DataFrame(rows)) == []  # eager 2x slower: host-bound, not judged
    slow = [dict(r, median_ms=6.0) if r["model"] == "tin" and r["compiled"] else r for r in rows]
    assert len(gpu_check.targets(ratios, pd.DataFrame(slow))) == 2
    eager_only = pd.DataFrame([r for r in rows if not r["compiled"]])
    assert "not judged" in gpu_check.targets(ratios, eager_only)[-1]
    assert "of copy bandwidth" in gpu_check.targets(ratios.assign(ratio=[1.5, 9.0]), pd.DataFrame(rows))[0]
    trained = pd.DataFrame([{"model": "tsn", "failed": "", "first_loss": 2.0, "last_loss": 1.0},
                            {"model": "tin", "failed": "", "first_loss": 2.0, "last_loss": 2.1},
                            {"model": "tada", "failed": "diverged at epoch 2 (loss)", "first_loss": None,
                             "last_loss": None}])
    missed = gpu_check.loss_targets(trained, 3)
    assert missed == ["tada: diverged at epoch 2 (loss)", "tin: training loss did not fall (2.000 -> 2.100)"]
