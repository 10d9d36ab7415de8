"""Snakemake as the workflow tests run it (imported by the test modules of this folder)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "workflow" / "config" / "smoke.yaml"


def snakemake(workdir: Path, *args: str, timeout: int = 600, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    """Snakemake as a user runs it: with the project's environment first on PATH (the jobs' `python`)."""
    environ = {**os.environ, **(env or {})}
    environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")])
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environ)


def jobs_to_run(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run."""
    stats = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
