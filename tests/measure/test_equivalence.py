"""tinlab.measure.equivalence and its CLI: TIN == r-TCN within the stated bounds."""
from __future__ import annotations

import json

import pandas as pd
import torch

from tinlab.__main__ import main
from tinlab.measure.equivalence import Case, cases, functional_case, model_case, passed, run_equivalence
from tinlab.ops import rtcn


def test_every_functional_case_is_within_bounds():
    frame = run_equivalence(cases(kinds=("functional",)))
    assert len(frame) == 2 * 3 * 2 * 2 * 2
    assert frame.passed.all(), frame[~frame.passed].to_string()
    f64 = frame[frame.dtype == "float64"]
    assert f64.filter(like="_abs").max().max() < 1e-12


def test_model_cases_within_bounds():
    for case in [Case("model", 8, 2, True, "zero", torch.float64), Case("model", 16, 4, False, "clamp",
                                                                         torch.float64),
                 Case("model", 8, 1, True, "clamp", torch.float32)]:
        errors = model_case(case, seed=3)
        assert passed(case, errors), (case, errors)


def test_the_bounds_catch_a_tiny_real_difference(monkeypatch):
    """Plant a defect: r-TCN built from offsets 1e-9 frames off. The float64 bound must catch it."""
    import tinlab.measure.equivalence as equivalence

    case = Case("functional", 8, 2, True, "zero", torch.float64)
    assert passed(case, functional_case(case))
    monkeypatch.setattr(equivalence, "rtcn", lambda x, o, w, b: rtcn(x, o + 1e-9, w, b))
    errors = functional_case(case)
    assert not passed(case, errors) and errors["forward_abs"] > 1e-12


def test_cli_writes_csv_and_provenance(tmp_path, capsys):
    out = tmp_path / "eq.csv"
    assert main(["equivalence", "--out", str(out), "--frames", "8", "--groups", "2"]) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 16 and frame.passed.all()
    assert {"forward_abs", "grad_x_rel", "grad_offsets_abs", "grad_weights_rel", "grad_params_abs"} <= set(frame)
    prov = json.loads((tmp_path / "eq.csv.provenance.json").read_text())
    assert {"code_version", "torch", "python", "device", "config"} <= set(prov)
    assert "16/16 cases within bounds" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind
