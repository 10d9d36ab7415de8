"""bench/takeoff.py: the epoch at which each run learned its task; and what docs/probes.md says of the
reference capability table's order runs, checked against the committed take-off table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import takeoff  # noqa: E402


def summary(path: Path, model: str, seed: int, top1: list[float]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"model": {"name": model}, "run": {"seed": seed}, "data": {"dataset": "probe-order-2", "num_segments": 8}}
    path.write_text(json.dumps({"provenance": {"config": config},
                                "history": [{"epoch": i + 1, "train": {"top1": v}} for i, v in enumerate(top1)]}))
    return path


def test_the_first_epoch_past_the_threshold_or_none(tmp_path, capsys):
    up = summary(tmp_path / "a" / "train_summary.json", "tin", 1, [0.5, 0.52, 0.91, 0.99])
    flat = summary(tmp_path / "b" / "train_summary.json", "tsm", 0, [0.5, 0.58, 0.55])
    out = tmp_path / "takeoff.csv"
    assert takeoff.main([str(up), str(flat), "--out", str(out)]) == 0
    table = pd.read_csv(out).set_index("model")
    assert table.loc["tin", "takeoff_epoch"] == 3 and table.loc["tin", "seed"] == 1
    assert pd.isna(table.loc["tsm", "takeoff_epoch"]) and table.loc["tsm", "epochs"] == 3
    assert table.loc["tsm", "train_top1_per_epoch"] == "50.0;58.0;55.0"
    assert (tmp_path / "takeoff.csv.provenance.json").is_file()
    assert takeoff.main([str(up), "--out", str(out), "--threshold", "99"]) == 0
    assert pd.read_csv(out).takeoff_epoch.iloc[0] == 4


@pytest.mark.parametrize("text, says", [(json.dumps({"history": []}), "no key 'provenance'"),
                                        ("{not json", "not JSON"),
                                        (None, "no epoch"),
                                        ("null-top1", "float()")])
def test_a_file_that_is_not_a_summary_is_one_line_naming_it(tmp_path, capsys, text, says):
    bad = tmp_path / "train_summary.json"
    if text is None:
        summary(bad, "tin", 0, [])
    elif text == "null-top1":
        summary(bad, "tin", 0, [None])
    else:
        bad.write_text(text)
    assert takeoff.main([str(bad), "--out", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "t.csv").exists()


def test_a_missing_file_is_one_line_naming_it(tmp_path, capsys):
    assert takeoff.main([str(tmp_path / "nowhere.json"), "--out", str(tmp_path / "t.csv")]) == 2
    assert "nowhere.json" in capsys.readouterr().err


def test_what_docs_probes_says_of_the_order_runs_is_what_the_reference_runs_did():
    runs = pd.read_csv(REPO / "results" / "reference" / "probes" / "takeoff.csv")
    probes = pd.read_csv(REPO / "results" / "reference" / "probes.csv")
    order = runs[runs.dataset.str.startswith("probe-order-") & runs.model.isin(["tsm", "tin"])]
    assert len(order) == 24
    never = order[order.takeoff_epoch.isna()]
    assert sorted(zip(never.model, never.seed, never.dataset)) == [("tin", 0, "probe-order-6"), ("tsm", 0, "probe-order-1")]
    peak = never.train_top1_per_epoch.str.split(";").map(lambda v: max(map(float, v)))
    low = never.train_top1_per_epoch.str.split(";").map(lambda v: min(map(float, v)))
    assert peak.max() <= 58.5 and low.min() >= 45.5 and (never.epochs == 16).all()  # "46-58% for all 16 epochs"
    learned = runs[runs.dataset.str.startswith("probe-order-") & runs.takeoff_epoch.notna()]
    assert learned.takeoff_epoch.between(3, 14).all()  # "some epoch between 3 and 14"
    assert learned[learned.dataset == "probe-order-6"].takeoff_epoch.between(3, 5).all()
    assert learned[learned.dataset == "probe-order-2"].takeoff_epoch.between(6, 14).all()
    assert sorted(learned[(learned.dataset == "probe-order-2") & (learned.model == "tin")].takeoff_epoch) == [11, 12, 14]
    assert learned[learned.model.isin(["tsm", "tin"])].final_train_top1.round(1).between(93.7, 99.7).all()  # "ends at 93.7-99.7%"
    gaps = runs[runs.dataset.str.startswith("probe-order-")].assign(gap=lambda t: t.dataset.str.split("-").str[-1].astype(int))
    at = gaps.pivot_table(index=["model", "seed"], columns="gap", values="takeoff_epoch")
    tin, tsm = at.loc["tin"], at.loc["tsm"]  # rows: seeds, columns: gaps
    assert (tin[2] > tin.drop(columns=2).max(axis=1)).all()  # TIN's slowest gap, on every seed
    assert tin.drop(columns=2).stack().dropna().between(3, 9).all()
    assert (tin[2] > tsm[2]).all() and list(tsm[2]) == [6, 7, 6]
    # cost: the 12 order-6 runs (all on quiet cores) took 90-136 s, 113 s on average
    six = runs[runs.dataset == "probe-order-6"].train_seconds
    assert len(six) == 12 and round(six.min()) == 90 and round(six.max()) == 136 and round(six.mean()) == 114
    # the reach column those two runs decide, and TIN against TSM on order-6
    reach = probes.drop_duplicates("model").set_index("model").order_reach
    assert (reach["tsm"], reach["tin"]) == (6, 4)
    six = probes[(probes.probe == "order-6") & (probes.model == "tin")].iloc[0]
    assert six.verdict_vs_tsm == "not distinguishable at this size"


def test_what_the_readme_says_of_the_capability_table_is_what_it_holds():
    probes = pd.read_csv(REPO / "results" / "reference" / "probes.csv")
    runs = pd.read_csv(REPO / "results" / "reference" / "probes" / "takeoff.csv")
    cell = probes.set_index(["probe", "model"])
    tsn = probes[probes.model == "tsn"].set_index("probe")
    timed = [p for p in tsn.index if p not in ("direction", "appearance")]
    assert ((tsn.loc[timed, "val_top1_lo"] <= tsn.loc[timed, "chance"])
            & (tsn.loc[timed, "chance"] <= tsn.loc[timed, "val_top1_hi"])).all()
    assert round(tsn.loc["direction", "pair_accuracy"], 1) == 47.5
    assert (probes[probes.probe == "appearance"].verdict_vs_tsn.dropna() == "not distinguishable at this size").all()
    better = {m: set(probes[(probes.model == m) & (probes.verdict_vs_tsn == "better")].probe) for m in ("tsm", "tin")}
    assert better["tsm"] & better["tin"] == {"direction", "order-2", "order-4", "counting"}
    assert (probes[probes.model == "tin"].verdict_vs_tsm == "not distinguishable at this size").all()
    # "not distinguishable" cells whose gain interval excludes 0: the ones docs/probes.md names
    unresolved = probes[probes.verdict_vs_tsn.eq("not distinguishable at this size") & (probes.gain_over_tsn_lo > 0)]
    assert set(zip(unresolved.probe, unresolved.model)) == {("direction", "tada"), ("speed", "tsm"), ("speed", "tin"),
                                                            ("order-1", "tsm"), ("order-6", "tin")}
    seeds = {m: [float(v) for v in cell.loc[("speed", m), "val_top1_per_seed"].split(";")] for m in ("tsn", "tsm")}
    assert min(seeds["tsm"]) > max(seeds["tsn"])
    tin6 = runs[(runs.model == "tin") & (runs.seed == 0) & (runs.dataset == "probe-order-6")].iloc[0]
    curve = [float(v) for v in tin6.train_top1_per_epoch.split(";")]
    assert len(curve) == 16 and 46 <= min(curve) and max(curve) <= 55
    # every model that learns order learns order-6 on at least two seeds, and no later than its other gaps
    order = runs[runs.dataset.str.startswith("probe-order-")].assign(gap=lambda t: t.dataset.str.split("-").str[-1].astype(int))
    epochs = order.pivot_table(index=["model", "seed"], columns="gap", values="takeoff_epoch")
    learners = {m for m, _ in epochs.index if epochs.loc[m].notna().any().any()}
    assert learners == {"tsm", "tin", "tada"}
    assert all(epochs.loc[m, 6].notna().sum() >= 2 for m in learners)
    six = epochs[6].dropna()
    assert all((epochs.loc[i].drop(6).dropna() >= six[i]).all() for i in six.index)
    assert (cell.loc[("order-6", "tada"), "val_top1_per_seed"] == "100;100;100"
            and cell.loc[("order-6", "tada"), "verdict_vs_tsn"] == "better")


def test_what_docs_probes_says_of_tada2d_is_what_its_runs_did():
    probes = pd.read_csv(REPO / "results" / "reference" / "probes.csv").set_index(["probe", "model"])
    seeds = {p: " / ".join("div." if v == "diverged" else f"{float(v):.0f}"
                           for v in probes.loc[(p, "tada"), "val_top1_per_seed"].split(";"))
             for p in ("order-1", "order-2", "order-4", "order-6", "counting", "direction")}
    assert seeds == {"order-1": "div. / 100 / 100", "order-2": "49 / div. / 49", "order-4": "51 / 50 / div.",
                     "order-6": "100 / 100 / 100", "counting": "div. / 26 / 58", "direction": "85 / 73 / 61"}
    assert probes.loc[("speed", "tada"), "gain_over_tsn_lo"] < 0 < probes.loc[("speed", "tada"), "gain_over_tsn_hi"]
    runs = pd.read_csv(REPO / "results" / "reference" / "probes" / "takeoff.csv")
    one = runs[(runs.model == "tada") & (runs.dataset == "probe-order-1")].set_index("seed").takeoff_epoch
    assert one.isna()[0] and (one[1], one[2]) == (12, 4)
    assert set(probes.diverged.dropna().str.extract(r"diverged at epoch (\d+)")[0]) == {"4"}
