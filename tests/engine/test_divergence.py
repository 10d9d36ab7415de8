"""A run that diverges is a result when asked (the workflow asks): the summary and the metrics record what
went non-finite and when, tables show the row with its cost and "diverged at epoch k" in place of
accuracies, comparisons give no verdict on it, and regress flags a new divergence."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from tinlab.__main__ import main
from tinlab.engine.config import load_config
from tinlab.engine.train import train
from tinlab.report.compare import compare
from tinlab.report.regress import regress


@pytest.fixture(scope="module")
def runs(tmp_path_factory, motion_root):
    """A finished TSN run and a TIN run that diverges at its second step (lr 1e30), both evaluated with
    --record-divergence, and Table 1 of the two."""
    import yaml

    root = tmp_path_factory.mktemp("divergence")
    out = {}
    for name, lr in (("tsn", 0.01), ("tin", 1.0e30)):
        raw = {"model": {"name": name, "backbone": "resnet18", "width_mult": 0.25, "small_stem": True},
               "data": {"root": str(motion_root), "num_segments": 4, "input_size": 32, "batch_size": 4},
               "optim": {"epochs": 1, "lr": lr, "bn": "train"}}
        config = root / f"{name}.yaml"
        config.write_text(yaml.safe_dump(raw))
        run = root / name
        assert main(["train", "--config", str(config), "--out", str(run), "--quiet", "--record-divergence"]) == 0
        assert main(["evaluate", "--run", str(run), "--record-divergence"]) == 0
        out[name] = run
    table = root / "table1.csv"
    assert main(["table", "--table", "table1", "--metrics", str(out["tsn"] / "metrics.json"),
                 str(out["tin"] / "metrics.json"), "--out", str(table)]) == 0
    out["table"], out["config"] = table, root / "tin.yaml"
    return out


def test_the_summary_and_the_metrics_record_what_diverged_and_when(runs, capsys):
    summary = json.loads((runs["tin"] / "train_summary.json").read_text())
    assert summary["diverged"]["what"] == "loss" and summary["diverged"]["epoch"] == 1
    assert summary["diverged"]["iteration"] == 1 and summary["diverged"]["value"] == "nan"
    assert summary["final"] == {} and not (runs["tin"] / "train_failed.json").exists()
    # A recorded divergence is a finished result: training again does nothing (``--force`` retrains).
    assert train(load_config(runs["config"]), runs["tin"], record_divergence=True)["diverged"]["epoch"] == 1
    metrics = json.loads((runs["tin"] / "metrics.json").read_text())
    assert metrics["top1"] is None and metrics["diverged"]["what"] == "loss"
    assert metrics["cost"]["gflops"] > 0 and metrics["cost"]["params"] > 0
    assert len(pd.read_csv(runs["tin"] / "metrics.predictions.csv")) == 0
    # Without --record-divergence, evaluating it is an error (exit 1), not an accuracy.
    assert main(["evaluate", "--run", str(runs["tin"]), "--out", str(runs["tin"] / "again.json")]) == 1
    assert "diverged at epoch 1 (loss)" in capsys.readouterr().err
    assert not (runs["tin"] / "again.json").exists()


def test_table1_shows_the_row_with_its_cost_and_the_divergence_in_place_of_accuracy(runs):
    table = pd.read_csv(runs["table"]).set_index("model")
    assert table.loc["tin", "diverged"] == "seed 0: diverged at epoch 1 (loss)"
    assert table.loc["tin", ["val_top1", "val_top1_lo", "val_top5", "pair_accuracy"]].isna().all()
    assert table.loc["tin", "val_top1_per_seed"] == "diverged"
    assert table.loc["tin", "gflops"] > table.loc["tsn", "gflops"] and table.loc["tin", "params"] > 0
    assert table.loc["tsn", "val_top1"] >= 0 and pd.isna(table.loc["tsn", "diverged"])


def test_comparisons_give_no_verdict_on_a_diverged_row(runs):
    out = compare([runs["table"]])
    row = out[(out.model == "tin") & (out.reference == "tsn")].iloc[0]
    assert row.verdict == "no verdict: tin diverged" and row.limited_by == "divergence"
    assert pd.isna(row.diff_top1) and pd.isna(row.p_holm)


def test_regress_flags_a_new_divergence_and_accepts_one_in_both(runs, tmp_path):
    reference, fresh = tmp_path / "reference", tmp_path / "fresh"
    reference.mkdir(), fresh.mkdir()
    table = pd.read_csv(runs["table"])
    table.to_csv(fresh / "table1.csv", index=False)
    table.to_csv(reference / "table1.csv", index=False)
    both = regress(fresh, reference)
    assert not both.status.isin(["REGRESSION", "RISE"]).any()
    finished = table.copy()
    finished.loc[finished.model == "tin", ["val_top1", "val_top5", "pair_accuracy", "diverged"]] = [50.0, 90.0, 60.0,
                                                                                                   None]
    finished.to_csv(reference / "table1.csv", index=False)
    moved = regress(fresh, reference)
    flagged = moved[moved.status == "REGRESSION"]
    assert list(flagged.metric) == ["diverged"] and "tin" in flagged["where"].iloc[0]
    assert list(regress(reference, fresh).status) == ["RISE"]  # the reverse: now finishes
    assert regress(reference, fresh, two_sided=False).status.tolist() == ["ok"]


def test_non_finite_logits_at_evaluation_are_an_error_or_a_recorded_divergence(runs, tmp_path, capsys):
    state = torch.load(runs["tsn"] / "checkpoint.pt", weights_only=False)
    state["model"]["fc.weight"].fill_(float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(state, bad)
    config = str(runs["tsn"] / "config.yaml")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--config", config, "--checkpoint", str(bad), "--out", str(out)]) == 1
    assert "non-finite logits for" in capsys.readouterr().err and not out.exists()
    assert main(["evaluate", "--config", config, "--checkpoint", str(bad), "--out", str(out),
                 "--record-divergence"]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["diverged"]["what"] == "evaluation logits" and metrics["top1"] is None


def test_the_accuracy_plot_marks_a_diverged_row_where_its_cost_is(runs, tmp_path):
    """The same table with and without the divergence noted (accuracies empty in both): only the marker and
    its label can make the two figures differ."""
    from matplotlib.image import imread

    from tinlab.report.plots import accuracy_vs_gflops

    table = pd.read_csv(runs["table"])
    marked = imread(accuracy_vs_gflops(table, tmp_path / "marked.png"))
    unmarked = imread(accuracy_vs_gflops(table.assign(diverged=None), tmp_path / "unmarked.png"))
    assert marked.shape != unmarked.shape or (marked != unmarked).any()
