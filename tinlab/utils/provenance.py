"""Provenance of every result file: config, code version, torch/Python versions, device, time, command.

A CSV gets a sidecar ``<file>.provenance.json`` (:func:`provenance_path`); a JSON result carries a
``provenance`` key. Example::

    prov = provenance({"table": "table1"}, device="cpu")
    prov["code_version"]     # '5e78837b2ba7' or '5e78837b2ba7-dirty'
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import tinlab
from tinlab.registry import PLUGINS_ENV

_PACKAGE_DIR = Path(tinlab.__file__).resolve().parent
# Tracked paths whose edits change what a result is: the library, the workflow and its configs, the
# benchmarks and the install. An edit anywhere in them marks the code version "-dirty".
RESULT_INPUTS = ("tinlab", "workflow", "bench", "Snakefile", "pyproject.toml", "environment.yml", "Makefile")


def code_version() -> str:
    """``<git commit>[-dirty]`` of the tinlab checkout, or the package version outside git (an install)."""
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=_PACKAGE_DIR, capture_output=True, text=True,
                                        timeout=10, check=True).stdout.strip()
        top = Path(run("rev-parse", "--show-toplevel")).resolve()
        if top != _PACKAGE_DIR.parent:  # tinlab installed inside some other repository
            raise OSError("not a tinlab checkout")
        commit = run("rev-parse", "--short=12", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", *(f":/{p}" for p in RESULT_INPUTS))
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"tinlab-{tinlab.__version__}"


def device_name(device: torch.device | str = "cpu") -> str:
    """A human-readable device name: the GPU model, or the CPU model and thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu} ({threads} thread{'s' * (threads != 1)})"


def provenance(config: dict[str, Any] | None = None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """What produced a result: config, code version, torch/Python versions, device, time, command."""
    return {
        "config": config or {},
        "code_version": code_version(),
        "tinlab": tinlab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        **({"plugins": os.environ[PLUGINS_ENV]} if os.environ.get(PLUGINS_ENV) else {}),
    }


def provenance_path(path: str | Path) -> Path:
    """Sidecar provenance file of a result: ``table.csv`` -> ``table.csv.provenance.json``."""
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")
