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


def test_the_capability_grid_marks_the_verdicts(tmp_path):
    """Bold: better than TSN; ▲ / ▼: better / worse than TSM; a diverged row says so; reach per model."""
    import json

    import pandas as pd

    sys.path.insert(0, str(SCRIPT.parent))
    import readme_reference

    rows = []
    for probe, chance in (("speed", 25), ("order-1", 50)):
        for model, top1, vs_tsn, vs_tsm, diverged in (("tsn", 25.0, "", "", ""), ("tsm", 60.0, "better", "", ""),
                                                      ("tin", 80.0, "better", "better", ""),
                                                      ("tada", 20.0, "worse", "worse", ""),
                                                      ("tadav2", float("nan"), "", "", "seed 1 at epoch 3")):
            rows.append(dict(probe=probe, model=model, frames=8, val_top1=top1, chance=chance,
                             verdict_vs_tsn=vs_tsn, verdict_vs_tsm=vs_tsm, diverged=diverged,
                             order_reach=1 if model == "tin" else 0, val_top1_per_seed="1;2;3"))
    pd.DataFrame(rows).to_csv(tmp_path / "probes.csv", index=False)
    (tmp_path / "probes.csv.provenance.json").write_text(json.dumps({"code_version": "abc"}))
    text = readme_reference.render_probes(tmp_path, "ref")
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in text.splitlines()
             if line.startswith("| t")}
    assert lines["tsn"] == ["25.0", "25.0", "0"] and lines["tsm"] == ["**60.0**", "**60.0**", "0"]
    assert lines["tin"] == ["**80.0** ▲", "**80.0** ▲", "1"] and lines["tada"] == ["20.0 ▼", "20.0 ▼", "0"]
    assert lines["tadav2"][:2] == ["diverged", "diverged"] and "3 seeds per cell" in text
    assert "speed (25)" in text and "order-1 (50)" in text
