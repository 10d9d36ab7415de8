"""tinlab/report/plots.py: one colour and marker per model in every figure, no markers on top of each other,
vector copies beside every PNG, spreads where the data have them."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tinlab.registry import list_models
from tinlab.report import plots


def hex_of(rgb) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb[:3])


def colours_in(svg_path) -> set[str]:
    return set(re.findall(r"#[0-9a-f]{6}", svg_path.read_text()))


def test_every_registered_model_has_its_own_colour_and_marker():
    styles = [plots.model_style(m) for m in list_models()]
    assert len({hex_of(s["color"]) for s in styles}) == len(styles)
    assert len({s["marker"] for s in styles}) == len(styles)
    assert plots.model_style("tsm") == plots.model_style("tsm")


def test_points_of_equal_gflops_are_spread_and_others_stay_put():
    offsets = plots._spread_equal_x([1.0, 1.0, 1.0001, 2.0])
    assert offsets[3] == 0.0
    assert sorted(offsets[:3]) == [-9.0, 0.0, 9.0]  # side by side, centred on their x


def table1(models=("tsn", "tsm", "tin"), frames=(8, 16)) -> pd.DataFrame:
    rows = []
    for t in frames:
        for i, m in enumerate(models):
            rows.append(dict(model=m, frames=t, gflops=0.02 * t / 8, params=1e6, val_top1=50 + 10 * i,
                             val_top1_lo=45 + 10 * i, val_top1_hi=55 + 10 * i, seeds="0 1 2", diverged=None,
                             dataset="synthetic-motion", backbone="resnet18"))
    return pd.DataFrame(rows)


def summary(folder, model, frames, seed, epochs):
    folder.mkdir(parents=True)
    history = [{"epoch": e + 1, "train": {"loss": 5.0 - e * 0.1}, "val": {"top1": 0.3 + 0.01 * e}}
               for e in range(epochs)]
    cfg = {"model": {"name": model}, "data": {"num_segments": frames}, "run": {"seed": seed}}
    (folder / "train_summary.json").write_text(json.dumps({"history": history, "provenance": {"config": cfg}}))
    return folder / "train_summary.json"


def latency_rows(threads=1):
    rows = []
    for mode in ("infer", "train"):
        for m in ("tsn", "tsm", "tin"):
            rows.append(dict(kind="model", name=m, mode=mode, frames=8, median_ms=2.0, q1_ms=1.5, q3_ms=2.5,
                             p10_ms=1.0, p90_ms=3.0, samples=10, threads=threads, batch=1, device="cpu",
                             device_name=f"Some CPU ({threads} threads)"))
    return pd.DataFrame(rows)


def test_a_model_has_the_same_colour_in_every_figure_and_vector_copies_are_written(tmp_path):
    paths = [plots.accuracy_vs_gflops(table1(), tmp_path / "acc.png"),
             plots.training_curves([summary(tmp_path / f"r{m}", m, 8, 0, 3) for m in ("tsn", "tsm", "tin")],
                                   tmp_path / "curves.png"),
             plots.latency(latency_rows(), tmp_path / "latency.png")]
    for path in paths:
        for ext in ("png", "pdf", "svg"):
            assert path.with_suffix(f".{ext}").stat().st_size > 1000, (path, ext)
        found = colours_in(path.with_suffix(".svg"))
        for m in ("tsn", "tsm", "tin"):
            assert hex_of(plots.model_style(m)["color"]) in found, (path.name, m)
    # tada is not in these figures: its colour is nowhere
    assert hex_of(plots.model_style("tada")["color"]) not in colours_in(tmp_path / "acc.svg")


def test_figures_are_the_same_bytes_for_the_same_inputs(tmp_path):
    a = plots.accuracy_vs_gflops(table1(), tmp_path / "a.png")
    b = plots.accuracy_vs_gflops(table1(), tmp_path / "b.png")
    for ext in ("png", "pdf", "svg"):
        assert a.with_suffix(f".{ext}").read_bytes() == b.with_suffix(f".{ext}").read_bytes(), ext


def test_latency_shows_its_spread_and_counts_threads_in_words(tmp_path):
    path = plots.latency(latency_rows(threads=1), tmp_path / "latency.png")
    svg = path.with_suffix(".svg").read_text()
    assert "whiskers IQR" in svg and "1 thread<" in svg and "1 threads" not in svg
    older = latency_rows().drop(columns=["q1_ms", "q3_ms"])  # a file from before the quartiles were written
    svg = plots.latency(older, tmp_path / "older.png").with_suffix(".svg").read_text()
    assert "10th-90th percentile" in svg


def test_one_epoch_runs_are_drawn_and_epochs_are_whole_numbers(tmp_path):
    path = plots.training_curves([summary(tmp_path / "r", "tin", 4, 0, 1)], tmp_path / "curves.png")
    svg = path.with_suffix(".svg").read_text()
    assert hex_of(plots.model_style("tin")["color"]) in colours_in(path.with_suffix(".svg"))
    labels = re.findall(r">([0-9.]+)</text>", svg)
    assert "1" in labels and not {"0.96", "0.98", "1.00", "1.02", "1.04"} & set(labels), labels  # whole epochs


def probe_table() -> pd.DataFrame:
    rows = []
    for probe, chance in (("order-1", 50.0), ("order-2", 50.0)):
        rows += [dict(probe=probe, model="tsn", val_top1=51.0, chance=chance, gain_over_tsn=None, verdict_vs_tsn=None,
                      order_reach=0, seeds="0 1 2", val_top1_per_seed="50;52;51", diverged=None),
                 dict(probe=probe, model="tsm", val_top1=85.2, chance=chance, gain_over_tsn=34.2,
                      verdict_vs_tsn="better" if probe == "order-2" else "not distinguishable at this size",
                      order_reach=2, seeds="0 1 2", val_top1_per_seed="55.62;100;100", diverged=None),
                 dict(probe=probe, model="tada", val_top1=None, chance=chance, gain_over_tsn=None,
                      verdict_vs_tsn="no verdict: tada diverged", order_reach=0, seeds="0 1 2",
                      val_top1_per_seed="diverged;100;100", diverged="seed 0: diverged at epoch 4 (validation loss)")]
    return pd.DataFrame(rows)


def test_the_capability_map_shows_the_control_each_seed_the_verdicts_and_why_a_cell_is_empty(tmp_path):
    cells = plots.probe_cells(probe_table())
    assert cells[("tsn", "order-1")] == "control\n(51%)\n50 · 52 · 51"
    assert cells[("tsm", "order-2")] == "+34 +\n(85%)\n56 · 100 · 100"  # better: marked
    assert cells[("tsm", "order-1")] == "+34\n(85%)\n56 · 100 · 100"  # not distinguishable: no mark
    assert cells[("tada", "order-1")] == "seed 0 diverged\ndiv. · 100 · 100"
    svg = plots.probes(probe_table(), tmp_path / "probes.png").with_suffix(".svg").read_text()
    for text in ("control", "56 · 100 · 100", "seed 0 diverged", "order reach 2", "order reach 0", "chance 50%"):
        assert text in svg, text
    assert svg.index(">tsn<") < svg.index("order reach 2")  # the control is the first row


def test_the_committed_capability_map_is_this_code_drawing_the_committed_table(tmp_path):
    """The reference map was once recorded from an older plotting code (no control row, no seeds): its
    size gives that away, since the layout sets it (rows, text lines)."""
    from matplotlib.image import imread

    reference = Path(__file__).resolve().parents[2] / "results" / "reference"
    fresh = plots.probes(pd.read_csv(reference / "probes.csv"), tmp_path / "probes.png")
    assert imread(fresh).shape == imread(reference / "plots" / "probes.png").shape


def test_the_capability_map_names_every_diverged_seed_and_draws_without_reach_or_control_top1(tmp_path):
    table = probe_table()
    table.loc[table.model == "tada", "diverged"] = "seed 0: diverged at epoch 4 (validation loss); seed 2: diverged at epoch 5 (loss)"
    table.loc[table.model == "tsn", "val_top1"] = None
    cells = plots.probe_cells(table)
    assert cells[("tada", "order-1")].startswith("seeds 0, 2 diverged\n")
    assert cells[("tsn", "order-1")].startswith("control\n50")
    table.loc[table.model == "tsm", "order_reach"] = None  # no verdict anywhere: no reach to label
    svg = plots.probes(table, tmp_path / "a.png").with_suffix(".svg").read_text()
    assert "order reach 0" in svg and "order reach 2" not in svg
    plots.probes(table.drop(columns=["order_reach", "val_top1_per_seed", "diverged"]), tmp_path / "b.png")
