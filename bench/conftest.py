"""pytest-benchmark suites (not part of the test suite: `pytest bench/`, see docs/measurements.md "Performance")."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THREADS = 2


def pytest_benchmark_update_machine_info(config, machine_info):
    """pytest-benchmark knows the CPU; add what decides a torch benchmark's speed."""
    from tinlab.utils.provenance import device_name

    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = THREADS
    machine_info["cpu_name"] = device_name("cpu")
    machine_info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


@pytest.fixture(autouse=True)
def _fixed_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)
