"""workflow/scripts/record_reference.py: prints `tinlab regress` of the new files against the reference, then
copies them with --yes; a file new to the reference has nothing to compare with, which is said."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "workflow" / "scripts" / "record_reference.py"
PROBES = REPO / "results" / "reference" / "probes" / "exploration-1152" / "probes.csv"


def record(results: Path, reference: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--results", str(results), "--reference", str(reference),
                           *extra], capture_output=True, text=True, cwd=REPO)


def test_a_new_table_is_recorded_and_a_changed_one_regressed_first(tmp_path):
    results, reference = tmp_path / "results", tmp_path / "reference"
    results.mkdir()
    reference.mkdir()
    for suffix in ("", ".provenance.json"):
        shutil.copyfile(str(PROBES) + suffix, results / f"probes.csv{suffix}")
    dry = record(results, reference, "--add", "probes.csv")
    assert dry.returncode == 0 and "nothing to compare them with" in dry.stdout and not any(reference.iterdir())
    done = record(results, reference, "--add", "probes.csv", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (reference / "probes.csv").read_bytes() == PROBES.read_bytes()
    assert (reference / "probes.csv.provenance.json").is_file()
    changed = (results / "probes.csv").read_text().replace("77.9167", "27.9167")  # TIN's speed cell
    (results / "probes.csv").write_text(changed)
    again = record(results, reference)
    assert "$ tinlab regress" in again.stdout and "speed" in again.stdout and "tin" in again.stdout
    assert (reference / "probes.csv").read_bytes() == PROBES.read_bytes()  # nothing written without --yes
