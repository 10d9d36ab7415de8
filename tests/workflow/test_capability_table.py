"""The capability table end to end at toy size: `snakemake results/probes.csv results/plots/probes.png` with a
probes section over the smoke profile (two models, three probes, one seed)."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from _snakemake import SMOKE, jobs_to_run, snakemake

TINY = {"seed": 0, "num_train": 12, "num_val": 8, "size": 32, "min_frames": 8, "max_frames": 8}


def probes_profile(folder, **changes):
    profile = yaml.safe_load(SMOKE.read_text())
    for name in ("probe-order-2", "probe-counting"):
        profile["datasets"][name] = {"root": f"data/smoke/{name}", "generate": TINY}
    profile["probes"] = {"models": ["tsn", "tsm"], "frames": 8, "seeds": [0],
                         "probes": ["direction", "order-2", "counting"], **changes}
    (folder / "p.yaml").write_text(yaml.safe_dump(profile))
    return str(folder / "p.yaml")


@pytest.mark.slow
def test_the_capability_table_and_its_map(tmp_path):
    profile = probes_profile(tmp_path)
    dry = snakemake(tmp_path, "-n", "results/probes.csv", "--configfile", profile)
    assert dry.returncode == 0 and jobs_to_run(dry.stdout)["train"] == 6, dry.stdout[-2000:]
    out = snakemake(tmp_path, "results/probes.csv", "results/plots/probes.png", "--configfile", profile, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "probes.csv")
    assert list(table.probe.unique()) == ["direction", "order-2", "counting"]  # the config's order
    assert len(table) == 6 and set(table.model) == {"tsn", "tsm"}
    chance = table.drop_duplicates("probe").set_index("probe").chance.round(2).to_dict()
    assert chance == {"direction": 8.33, "order-2": 50.0, "counting": 25.0}
    assert (table.val_top1_lo <= table.val_top1).all() and (table.val_top1 <= table.val_top1_hi).all()
    others = table[table.model != "tsn"]
    assert set(others.verdict_vs_tsn) == {"no verdict: one run, training noise unmeasured"}  # one seed
    assert table[table.model == "tsn"].verdict_vs_tsn.isna().all()
    assert table.verdict_vs_tsm.isna().all() and (table.order_reach == 0).all()  # no model besides TSM to compare
    for ext in ("png", "pdf", "svg"):
        assert (tmp_path / "results" / "plots" / f"probes.{ext}").stat().st_size > 1000
    assert (tmp_path / "results" / "probes.csv.provenance.json").is_file()


def test_a_probe_without_its_dataset_stops_before_anything_runs(tmp_path):
    profile = yaml.safe_load(open(probes_profile(tmp_path)).read())
    del profile["datasets"]["probe-counting"]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    out = snakemake(tmp_path, "-n", "results/probes.csv", "--configfile", str(tmp_path / "p.yaml"))
    assert out.returncode != 0 and "'probe-counting' is not under 'datasets'" in out.stdout + out.stderr


def test_a_plugin_model_gets_its_row_of_every_probe(tmp_path):
    """A module registered by the profile's `plugins:` is trained on every probe like a built-in (dry run)."""
    from _snakemake import REPO

    (tmp_path / "examples").symlink_to(REPO / "examples")
    profile = yaml.safe_load(open(probes_profile(tmp_path, models=["tsn", "tea"])).read())
    profile["plugins"] = ["examples/tinlab-tea/tinlab_tea.py"]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    dry = snakemake(tmp_path, "-n", "-p", "results/probes.csv", "--configfile", str(tmp_path / "p.yaml"))
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    for dataset in ("synthetic-motion", "probe-order-2", "probe-counting"):
        assert f"tea_T8_{dataset}" in dry.stdout, dataset
