"""tinlab/report/tables.py: Table 5 averages each ablation row over its seeds."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from tinlab.errors import DataError
from tinlab.report.tables import build_table


def _row(groups, reverse, seed, top1, boundary="zero"):
    return dict(model="tin", groups=groups, reverse=reverse, boundary=boundary, options="{}", frames=8,
                dataset="synthetic-motion", backbone="resnet18", input_size=48, seed=seed, val_top1=top1,
                val_top5=100.0, pair_accuracy=top1 + 5, params=1000 + groups, gflops=0.05,
                metrics_file=f"runs/g{groups}{reverse}_s{seed}/metrics.json")


def test_table5_mean_std_and_every_seed():
    rows = pd.DataFrame([_row(2, True, 1, 70.0), _row(2, True, 0, 80.0), _row(2, True, 2, 90.0),
                         _row(1, False, 0, 50.0), _row(2, True, 0, 60.0, boundary="clamp")])
    table = build_table("table5", rows)
    assert list(zip(table.groups, table.reverse, table.boundary)) == [(1, False, "zero"), (2, True, "zero"),
                                                                     (2, True, "clamp")]
    g2 = table.iloc[1]
    assert g2.val_top1 == 80.0 and g2.val_top1_std == 10.0 and g2.pair_accuracy == 85.0
    assert g2.seeds == "0 1 2" and g2.val_top1_per_seed == "80;70;90"  # in seed order
    assert g2.metrics_file.split() == [f"runs/g2True_s{s}/metrics.json" for s in (0, 1, 2)]
    single = table.iloc[0]
    assert single.val_top1 == 50.0 and math.isnan(single.val_top1_std) and single.seeds == "0"


def test_table5_keeps_configurations_apart_and_rejects_a_repeated_seed():
    rows = pd.DataFrame([_row(2, True, 0, 80.0), {**_row(2, True, 0, 60.0), "epochs": 30}])
    rows["epochs"] = rows.epochs.fillna(20)
    assert len(build_table("table5", rows)) == 2  # different epochs: two rows, not one mean
    with pytest.raises(ValueError, match="same seed"):
        build_table("table5", pd.DataFrame([_row(2, True, 0, 80.0), _row(2, True, 0, 60.0)]))


def test_table1_rows_average_their_seeds():
    """Table 1 (like Table 5) has one row per model and frames: the mean over its seeds, their standard
    deviation and every seed's top-1; a row with one seed has no standard deviation."""
    import numpy as np

    from tinlab.report.tables import build_table

    def run(model, seed, top1):
        return dict(model=model, groups=None, reverse=None, boundary=None, options="{}", frames=8, dataset="d",
                    backbone="resnet18", width_mult=0.25, small_stem=False, input_size=32, num_classes=12, views=1,
                    epochs=16, seed=seed, val_top1=top1, val_top5=100.0, pair_accuracy=90.0, params=1, gflops=0.1,
                    metrics_file=f"{model}{seed}/metrics.json")

    rows = pd.DataFrame([run("tin", 1, 80.0), run("tin", 0, 90.0), run("tin", 2, 85.0), run("tsn", 0, 25.0)])
    table = build_table("table1", rows).set_index("model")
    assert list(table.index) == ["tsn", "tin"]  # registry order
    assert table.loc["tin", "val_top1"] == 85.0 and table.loc["tin", "seeds"] == "0 1 2"
    assert table.loc["tin", "val_top1_per_seed"] == "90;80;85"
    assert table.loc["tin", "val_top1_std"] == pytest.approx(np.std([90, 80, 85], ddof=1))
    assert np.isnan(table.loc["tsn", "val_top1_std"]) and str(table.loc["tsn", "seeds"]) == "0"
    with pytest.raises(DataError, match="same seed"):
        build_table("table1", pd.concat([rows, rows.iloc[:1]]))


def test_table1_takes_the_latency_of_the_model_each_row_trained():
    """A row trained with options gets the latency measured with those options, never the default
    model's; a latency file without options (or of other options) leaves the cell empty."""
    def run(model, options):
        return dict(model=model, groups=None, reverse=None, boundary=None, options=options, frames=8, dataset="d",
                    backbone="resnet18", width_mult=0.25, small_stem=False, input_size=32, num_classes=12, views=1,
                    epochs=16, seed=0, val_top1=50.0, val_top5=100.0, pair_accuracy=90.0, params=1, gflops=0.1,
                    metrics_file=f"{model}/metrics.json")

    rows = pd.DataFrame([run("tsn", "{}"), run("tsm", '{"shift_div": 4}')])
    latency = pd.DataFrame([
        dict(kind="model", name="tsn", mode="infer", frames=8, options="{}", median_ms=1.0),
        dict(kind="model", name="tsm", mode="infer", frames=8, options="{}", median_ms=2.0),
        dict(kind="model", name="tsm", mode="infer", frames=8, options='{"shift_div": 4}', median_ms=3.0),
        dict(kind="model", name="tsm", mode="train", frames=8, options='{"shift_div": 4}', median_ms=9.0)])
    table = build_table("table1", rows, latency).set_index("model")
    assert table.loc["tsn", "latency_ms"] == 1.0 and table.loc["tsm", "latency_ms"] == 3.0
    # a default option written out is the default model
    explicit = latency.assign(options=latency.options.replace({"{}": '{"shift_div": 8}'}))
    assert build_table("table1", rows, explicit).set_index("model").loc["tsm", "latency_ms"] == 3.0
    old = latency[latency.options == "{}"].drop(columns="options")  # an older file: the default models only
    table = build_table("table1", rows, old).set_index("model")
    assert table.loc["tsn", "latency_ms"] == 1.0 and math.isnan(table.loc["tsm", "latency_ms"])
