"""tinlab/utils/provenance.py: the code version marks edits to every tracked file that affects results."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tinlab.utils import provenance


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A git repository laid out like tinlab's, with the package folder pointed at it."""
    for path in ("tinlab/__init__.py", "workflow/config/default.yaml", "bench/ratios.py", "README.md", "tests/t.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x\n")
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(provenance, "_PACKAGE_DIR", tmp_path / "tinlab")
    return tmp_path


@pytest.mark.parametrize("edited, dirty", [("tinlab/__init__.py", True), ("workflow/config/default.yaml", True),
                                           ("bench/ratios.py", True), ("README.md", False), ("tests/t.py", False)])
def test_dirty_covers_what_changes_results(checkout, edited, dirty):
    clean = provenance.code_version()
    assert len(clean) == 12 and not clean.endswith("-dirty")
    (checkout / edited).write_text("edited\n")
    assert provenance.code_version() == clean + ("-dirty" if dirty else "")
