"""Provenance of every result file, and writes that never leave a half-written file behind."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

import tinlab

_PACKAGE_DIR = Path(tinlab.__file__).resolve().parent


def code_version() -> str:
    """``<git commit>[-dirty]`` of the tinlab checkout, or the package version outside git."""
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=_PACKAGE_DIR, capture_output=True, text=True,
                                        timeout=10, check=True).stdout.strip()
        commit = run("rev-parse", "--short=12", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", str(_PACKAGE_DIR))
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
    return f"{cpu} ({torch.get_num_threads()} threads)"


def provenance(config: dict[str, Any] | None = None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """What produced a result: config, code version, torch/Python versions, device, time, command."""
    return {
        "config": config or {},
        "code_version": code_version(),
        "tinlab": tinlab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """``write(f)`` into a temporary file in the same folder, fsync, then ``os.replace`` onto ``path``: a
    killed writer leaves the previous file intact, never a truncated one. The file gets the permissions
    of an ordinary new file (mkstemp makes 0600 ones; results and checkpoints are meant to be shared)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def provenance_path(path: str | Path) -> Path:
    """Sidecar provenance file of a result: ``table.csv`` -> ``table.csv.provenance.json``."""
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")


def write_csv(frame: "pandas.DataFrame", path: str | Path, prov: dict[str, Any]) -> Path:  # noqa: F821
    """Write a result table atomically, with its provenance in a sidecar JSON written first."""
    atomic_write_text(provenance_path(path), json.dumps(prov, indent=2, default=str) + "\n")
    return atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g"))
