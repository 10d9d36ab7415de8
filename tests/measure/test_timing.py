"""tinlab.measure.timing: timing helpers, the latency table and profiler traces."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tinlab.__main__ import main
from tinlab.measure.timing import interleaved_times, summarize


def test_summarize_statistics():
    s = summarize([i / 1000 for i in range(1, 22)])  # 1..21 ms
    assert s["median_ms"] == pytest.approx(11.0) and s["samples"] == 21
    assert s["iqr_ms"] == pytest.approx(10.0) and s["p10_ms"] == pytest.approx(3.0)


def test_interleaved_times_discards_warmup_and_orders_calls():
    calls = []
    times = interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3,
                              warmup=2, inner=2)
    assert calls == ["a", "a", "b", "b"] * 5
    assert [len(v) for v in times.values()] == [3, 3]


def test_latency_cli_table_and_traces(tmp_path, capsys):
    out, traces = tmp_path / "latency.csv", tmp_path / "traces"
    assert main(["latency", "--out", str(out), "--models", "tsn", "tsm", "tin", "--ops", "copy", "tsm", "tin",
                 "--backbone", "resnet18", "--width-mult", "0.25", "--small-stem", "--size", "16",
                 "--frames", "4", "--rounds", "2", "--warmup", "1", "--op-channels", "32", "--op-size", "4",
                 "--trace-dir", str(traces)]) == 0
    frame = pd.read_csv(out)
    for col in ["device_name", "torch", "threads", "dtype", "batch", "frames", "size", "median_ms", "iqr_ms",
                "clips_per_s", "ratio_to_tsn", "ratio_to_tsm"]:
        assert col in frame, col
    models = frame[frame.kind == "model"].set_index(["name", "mode"])
    assert len(models) == 6
    for mode in ("infer", "train"):  # every ratio is against the same mode's reference row
        assert models.loc[("tin", mode), "ratio_to_tsm"] == pytest.approx(
            models.loc[("tin", mode), "median_ms"] / models.loc[("tsm", mode), "median_ms"], rel=1e-4)
    assert models.loc[("tin", "train"), "ratio_to_tsn"] == pytest.approx(
        models.loc[("tin", "train"), "median_ms"] / models.loc[("tsn", "train"), "median_ms"], rel=1e-4)  # CSV: 6 digits
    ops = frame[frame.kind == "op"].set_index(["name", "mode"])
    assert ops.loc[("tin", "infer"), "ratio_to_copy"] == pytest.approx(
        ops.loc[("tin", "infer"), "median_ms"] / ops.loc[("copy", "infer"), "median_ms"], rel=1e-4)
    assert pd.isna(ops.loc[("tin", "train"), "ratio_to_copy"])  # no backward of a copy to compare with
    for name in ("tsn", "tsm", "tin"):
        files = list((traces / f"{name}_T4").glob("*.pt.trace.json"))
        assert len(files) == 1
        events = json.loads(files[0].read_text())["traceEvents"]
        assert any(e.get("name") == "aten::convolution" for e in events)
    assert "per-operator summary" in capsys.readouterr().out
    assert (tmp_path / "latency.csv.provenance.json").exists()


def test_latency_times_the_models_with_their_options(tmp_path):
    """--model-options builds the models and ops with the options a table's runs trained, and each row
    records them; an unknown model or option is refused naming it."""
    out = tmp_path / "latency.csv"
    common = ["--backbone", "resnet18", "--width-mult", "0.25", "--small-stem", "--size", "16", "--frames", "4",
              "--rounds", "1", "--warmup", "0", "--modes", "infer", "--op-channels", "32", "--op-size", "4"]
    assert main(["latency", "--out", str(out), "--models", "tsn", "tsm", "--ops", "tsm", *common,
                 "--model-options", '{"tsm": {"shift_div": 4}}']) == 0
    frame = pd.read_csv(out).set_index(["kind", "name"])
    assert frame.loc[("model", "tsm"), "options"] == '{"shift_div": 4}' == frame.loc[("op", "tsm"), "options"]
    assert frame.loc[("model", "tsn"), "options"] == "{}"
    assert json.loads((tmp_path / "latency.csv.provenance.json").read_text())["config"]["model_options"]
    for bad, message in (('{"tsm": {"fold": 4}}', "does not take option(s) ['fold']"),
                         ('{"nope": {}}', "unknown model 'nope'"), ("{tsm", "not JSON")):
        with pytest.raises(Exception, match=re.escape(message)):
            main(["latency", "--out", str(out), "--models", "tsm", "--ops", *common, "--model-options", bad,
                  "--debug"])


def test_a_built_tsm_with_other_options_is_another_model():
    """The options reach the model timed (not only the row's label): shift_div changes what TSM shifts."""
    from tinlab.measure.timing import Setting, model_candidates

    s = Setting(backbone="resnet18", width_mult=0.25, small_stem=True, size=16, frames=4,
                model_options={"tsm": {"shift_div": 4}})
    _, built = model_candidates(s, ["tsm"], ["infer"])
    shifts = {m.shift_div for m in built["tsm"].modules() if hasattr(m, "shift_div")}
    assert shifts == {4}
