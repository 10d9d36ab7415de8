"""tinlab.measure.complexity and its CLI."""
from __future__ import annotations

import pandas as pd

import tinlab

from tinlab.__main__ import main


def test_complexity_cli_small(tmp_path):
    out = tmp_path / "c.csv"
    assert main(["complexity", "--out", str(out), "--backbone", "resnet18", "--frames", "4", "8",
                 "--classes", "10", "--input-size", "32", "--width-mult", "0.5", "--small-stem"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.model[frame.frames == 4]) == tinlab.list_models() and len(frame) == 2 * len(tinlab.list_models())
    tsn = frame[frame.model == "tsn"].set_index("frames")
    tsm = frame[frame.model == "tsm"].set_index("frames")
    assert (tsm.gflops == tsn.gflops).all() and (tsm.params == tsn.params).all()
    tin = frame[frame.model == "tin"].set_index("frames")
    assert (tin.extra_params_vs_tsn > 0).all() and (tin.extra_gflops_vs_tsn > 0).all()
    # TIN's OffsetNet holds Linear(T, T): more frames, more parameters.
    assert tin.loc[8, "params"] > tin.loc[4, "params"]
    assert (out.parent / "c.csv.provenance.json").exists()
