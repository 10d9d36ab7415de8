"""The README's reference tables are rendered from the committed results/reference files, not typed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "workflow" / "scripts" / "readme_reference.py"


def test_readme_reference_tables_match_the_committed_results():
    out = subprocess.run([sys.executable, str(SCRIPT), "--check", "--reference", "results/reference",
                          "--readme", "README.md"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_detects_a_stale_number(tmp_path):
    readme = tmp_path / "README.md"
    (tmp_path / "results").symlink_to(REPO / "results")  # the same path relative to the README
    text = (REPO / "README.md").read_text()
    begin = text.index("<!-- reference-tables:begin -->")
    readme.write_text(text[:begin] + text[begin:].replace("| tin ", "| TIN ", 1))
    out = subprocess.run([sys.executable, str(SCRIPT), "--check", "--reference", str(tmp_path / "results/reference"),
                          "--readme", str(readme)], capture_output=True, text=True)
    assert out.returncode == 1 and "differ" in out.stdout
    subprocess.run([sys.executable, str(SCRIPT), "--reference", str(tmp_path / "results/reference"), "--readme",
                    str(readme)], check=True)
    fixed = readme.read_text()
    assert fixed == text and "| tin " in fixed[begin:fixed.index("<!-- reference-tables:end -->")]


def test_the_docs_show_the_whole_example_plugin():
    """docs/add-your-module.md quotes examples/tinlab-tea/tinlab_tea.py in full: they cannot drift apart."""
    plugin = (REPO / "examples" / "tinlab-tea" / "tinlab_tea.py").read_text().rstrip()
    assert f"```python\n{plugin}\n```" in (REPO / "docs" / "add-your-module.md").read_text()
