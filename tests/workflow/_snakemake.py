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


def one_long_run_profile(folder: Path, epochs: int) -> Path:
    """The smoke profile cut to one TSN training of ``epochs`` epochs (Table 1 alone, a one-round latency):
    a job long enough to interrupt. Written to ``folder/p.yaml``; returns its path."""
    import yaml

    profile = yaml.safe_load(SMOKE.read_text())
    profile.update(table1={"dataset": "synthetic-motion", "models": ["tsn"], "frames": [4]},
                   latency={"rounds": 1, "warmup": 0, "modes": ["infer"], "trace": False, "threads": 1})
    profile["base"]["optim"].update(epochs=epochs, milestones=[])
    for table in ("table2", "table5"):
        del profile[table]
    (folder / "p.yaml").write_text(yaml.safe_dump(profile))
    return folder / "p.yaml"
