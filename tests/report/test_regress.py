"""tinlab.report.regress: passes on the reference, fails on planted regressions."""
from __future__ import annotations

import pandas as pd
import pytest

from tinlab.__main__ import main

TABLE1 = pd.DataFrame({
    "model": ["tsn", "tin"], "backbone": ["resnet18"] * 2, "frames": [8, 8], "input_size": [64, 64],
    "dataset": ["synthetic-motion"] * 2, "gflops": [0.123456, 0.124567], "params": [700000, 703000],
    "val_top1": [24.3, 84.0], "val_top5": [70.0, 99.0]})
EQUIVALENCE = pd.DataFrame({"kind": ["functional"], "num_segments": [8], "groups": [2], "reverse": [True],
                            "boundary": ["zero"], "dtype": ["float64"], "forward_abs": [1e-16], "passed": [True]})


def write(folder, table1=TABLE1, equivalence=EQUIVALENCE):
    folder.mkdir(parents=True, exist_ok=True)
    table1.to_csv(folder / "table1.csv", index=False)
    equivalence.to_csv(folder / "equivalence.csv", index=False)
    return folder


def run(tmp_path, fresh: pd.DataFrame, equivalence=EQUIVALENCE, tolerance: str = "2.0") -> int:
    ref = write(tmp_path / "reference")
    new = write(tmp_path / "fresh", fresh, equivalence)
    return main(["regress", "--results", str(new), "--reference", str(ref), "--tolerance", tolerance])


def test_passes_on_the_reference(tmp_path, capsys):
    assert run(tmp_path, TABLE1) == 0
    assert "nothing moved" in capsys.readouterr().out


def test_small_accuracy_change_is_reported_but_passes(tmp_path, capsys):
    assert run(tmp_path, TABLE1.assign(val_top1=[23.0, 85.0])) == 0
    out = capsys.readouterr().out
    assert "val_top1" in out and "REGRESSION" not in out.split("tinlab regress:")[0]


@pytest.mark.parametrize("change, metric", [
    (dict(val_top1=[24.3, 79.0]), "val_top1"),      # TIN lost 5 points
    (dict(val_top5=[60.0, 99.0]), "val_top5"),
    (dict(params=[700000, 703001]), "params"),      # the architecture changed
    (dict(gflops=[0.123456, 0.1246]), "gflops"),
])
def test_planted_regression_fails_and_is_named(tmp_path, capsys, change, metric):
    assert run(tmp_path, TABLE1.assign(**change)) == 1
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if "REGRESSION" in l)
    assert metric in line and "table1" in line


def test_missing_row_and_failed_equivalence_fail(tmp_path, capsys):
    assert run(tmp_path, TABLE1.iloc[:1]) == 1
    assert "missing" in capsys.readouterr().out
    assert run(tmp_path, TABLE1, EQUIVALENCE.assign(passed=[False])) == 1
    assert "equivalence: functional" in capsys.readouterr().out


def test_nothing_to_compare_and_unreadable_input_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["regress", "--results", str(tmp_path / "a"), "--reference", str(tmp_path / "b")]) == 2
    assert "nothing to compare" in capsys.readouterr().err
    assert main(["regress", "--results", str(tmp_path / "nope"), "--reference", str(tmp_path / "b")]) == 2
    assert f"--results {tmp_path / 'nope'} is not a folder" in capsys.readouterr().err
    ref = write(tmp_path / "reference")
    (tmp_path / "a" / "table1.csv").write_text("")
    assert main(["regress", "--results", str(tmp_path / "a"), "--reference", str(ref)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'a' / 'table1.csv'}: not a readable results table" in err and len(err.splitlines()) == 1


def test_a_rise_beyond_the_tolerance_is_flagged_unless_one_sided(tmp_path, capsys):
    assert run(tmp_path, TABLE1.assign(val_top1=[40.0, 84.0])) == 1  # TSN far above chance: suspicious
    assert "RISE" in capsys.readouterr().out
    new = tmp_path / "fresh"
    assert main(["regress", "--results", str(new), "--reference", str(tmp_path / "reference"), "--tolerance", "2",
                 "--one-sided"]) == 0


@pytest.mark.parametrize("drop", ["val_top1", "model"])
def test_a_fresh_table_lacking_a_compared_or_key_column_is_a_regression(tmp_path, capsys, drop):
    """Before: a missing val_top1 printed 'nothing moved', a missing model column cross-joined the rows."""
    assert run(tmp_path, TABLE1.drop(columns=[drop])) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and drop in out and "nothing moved" not in out


def test_reference_tables_not_produced_are_listed_not_failed_unless_required(tmp_path, capsys):
    ref = write(tmp_path / "reference")
    TABLE1.to_csv(ref / "table2.csv", index=False)
    new = write(tmp_path / "fresh")
    assert main(["regress", "--results", str(new), "--reference", str(ref)]) == 0
    assert "not produced (not compared): table2" in capsys.readouterr().out
    assert main(["regress", "--results", str(new), "--reference", str(ref), "--require", "table1", "table2"]) == 1
    assert main(["regress", "--results", str(new), "--reference", str(ref), "--require", "table5"]) == 2
    assert "has no table5.csv" in capsys.readouterr().err


def test_tolerances_from_the_reference_folder(tmp_path, capsys):
    ref = write(tmp_path / "reference")
    (ref / "tolerances.json").write_text('{"default": 2.0, "table1": {"val_top1": 6.0}}')
    new = write(tmp_path / "fresh", TABLE1.assign(val_top1=[24.3, 79.0]))  # -5 points: within 6
    assert main(["regress", "--results", str(new), "--reference", str(ref)]) == 0
    write(tmp_path / "fresh", TABLE1.assign(val_top5=[70.0, 95.0]))  # -4 points of top-5: default 2 applies
    assert main(["regress", "--results", str(new), "--reference", str(ref)]) == 1


def test_table5_means_over_other_seeds_do_not_match(tmp_path, capsys):
    """A 3-seed mean is not compared with a 1-seed reference value: the row is reported missing."""
    table5 = pd.DataFrame({"groups": [2], "reverse": [True], "boundary": ["zero"], "frames": [8],
                           "dataset": ["synthetic-motion"], "seeds": ["0"], "val_top1": [80.0], "params": [1000]})
    ref, new = write(tmp_path / "reference"), write(tmp_path / "fresh")
    table5.to_csv(ref / "table5.csv", index=False)
    table5.assign(seeds=["0 1 2"], val_top1=[81.0]).to_csv(new / "table5.csv", index=False)
    assert main(["regress", "--results", str(new), "--reference", str(ref)]) == 1
    assert "seeds=0" in capsys.readouterr().out
    table5.to_csv(new / "table5.csv", index=False)
    assert main(["regress", "--results", str(new), "--reference", str(ref)]) == 0


def test_tolerance_from_the_seed_spread_scales_with_the_seeds_per_row(tmp_path, capsys):
    """``{"sd": s, "z": z}``: a row averaging k seeds gets z sqrt(2 / k) s, rounded up to half a point:
    s = 2, z = 3 -> 8.5 points for one seed, 5.0 for three: a 6-point drop passes the first, fails the second."""
    import json

    from tinlab.report.regress import _tolerance

    table = {"table1": {"val_top1": {"sd": 2.0, "z": 3.0}}}
    assert _tolerance(table, "table1", "val_top1", 1) == 8.5
    assert _tolerance(table, "table1", "val_top1", 3) == 5.0
    for seeds, expected in (("0", 0), ("0 1 2", 1)):
        ref = write(tmp_path / seeds / "reference", TABLE1.assign(seeds=seeds))
        (ref / "tolerances.json").write_text(json.dumps(table))
        new = write(tmp_path / seeds / "fresh", TABLE1.assign(seeds=seeds, val_top1=[24.3, 78.0]))
        assert main(["regress", "--results", str(new), "--reference", str(ref)]) == expected, seeds
    # another set of seeds is another quantity: the row does not match, and that is a regression
    ref = write(tmp_path / "other" / "reference", TABLE1.assign(seeds="0 1 2"))
    new = write(tmp_path / "other" / "fresh", TABLE1.assign(seeds="3 4 5"))
    assert main(["regress", "--results", str(new), "--reference", str(ref)]) == 1
    assert "seeds=0 1 2" in capsys.readouterr().out


def test_a_noisy_row_gets_its_own_wider_tolerance_and_a_quiet_one_the_pooled():
    from tinlab.report.regress import _tolerance

    table = {"table1": {"val_top1": {"sd": 2.0, "z": 3.0, "sd_by_row": {"tin_T16": 6.0, "tsm_T8": 0.5}}}}
    assert _tolerance(table, "table1", "val_top1", 1, "tin_T16") == 25.5  # 3 sqrt(2) 6 = 25.46
    assert _tolerance(table, "table1", "val_top1", 1, "tsm_T8") == 8.5  # the pooled 2, not 0.5
    assert _tolerance(table, "table1", "val_top1", 1, "rtcn_T8") == 8.5


def test_a_gflops_difference_below_the_csv_precision_is_rounding_not_a_regression(tmp_path, capsys):
    assert run(tmp_path, TABLE1.assign(gflops=[0.123456 + 2e-7, 0.124567])) == 0
    assert run(tmp_path, TABLE1.assign(gflops=[0.123456 + 2e-5, 0.124567])) == 1


def test_results_of_another_profile_get_one_line_saying_so(tmp_path, capsys):
    """Smoke results against the default reference: no row matches; one line names what differs instead of
    a 'missing' line per reference row."""
    assert run(tmp_path, TABLE1.assign(frames=[4, 4], input_size=[32, 32])) == 1
    out = capsys.readouterr().out
    assert "none matches: another profile or experiment?" in out and "missing" not in out
    assert "frames=8" in out and "frames=4" in out and "input_size=64" in out and "input_size=32" in out


def test_text_in_a_numeric_column_is_a_one_line_error(tmp_path, capsys):
    assert run(tmp_path, TABLE1.assign(val_top1=["24.3", "eighty"])) == 2
    err = capsys.readouterr().err
    assert "table1.csv (fresh)" in err and "model=tin" in err and "val_top1 = 'eighty' is not a number" in err


def test_fresh_rows_the_reference_lacks_are_listed_as_new_not_failed(tmp_path, capsys):
    extra = pd.concat([TABLE1, TABLE1.iloc[[1]].assign(model="tadav2")], ignore_index=True)
    assert run(tmp_path, extra) == 0
    out = capsys.readouterr().out
    assert "new rows, not in the reference (not compared): table1: model=tadav2" in out and "nothing moved" in out


def test_the_capability_table_is_covered(tmp_path, capsys):
    """probes.csv rows match on probe and model: a probe's top-1 that fell beyond the tolerance fails."""
    probes = pd.DataFrame({"probe": ["speed", "order-2"], "model": ["tsm", "tsm"], "frames": [8, 8],
                           "dataset": ["probe-speed", "probe-order-2"], "seeds": ["0 1 2"] * 2,
                           "val_top1": [80.0, 90.0]})
    for folder, table in (("reference", probes), ("fresh", probes.assign(val_top1=[80.5, 70.0]))):
        write(tmp_path / folder)
        table.to_csv(tmp_path / folder / "probes.csv", index=False)
    assert main(["regress", "--results", str(tmp_path / "fresh"), "--reference", str(tmp_path / "reference"),
                 "--require", "probes"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "order-2" in out and out.count("REGRESSION") == 1


def test_a_row_that_diverged_as_in_the_reference_is_listed_but_not_a_change(tmp_path, capsys):
    gone = "seed 0: diverged at epoch 4 (validation loss)"
    reference = TABLE1.assign(diverged=["", gone], val_top1=[24.3, None])
    write(tmp_path / "reference", reference)
    for fresh, verdict in ((reference, "0 change(s) within tolerance, 1 row(s) diverged as in the reference"),
                           (reference.assign(diverged=["", gone.replace("4", "5")]),
                            "1 change(s) within tolerance")):
        write(tmp_path / "fresh", fresh)
        assert main(["regress", "--results", str(tmp_path / "fresh"), "--reference", str(tmp_path / "reference")]) == 0
        out = capsys.readouterr().out
        assert gone in out and out.strip().endswith(verdict), out
