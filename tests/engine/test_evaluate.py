"""tinlab/engine/evaluate.py: generate -> train -> evaluate from scratch; metrics, twins, TIN offsets."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from tinlab.__main__ import main
from tinlab.engine.evaluate import classification_metrics

REQUIRED = {"top1", "top5", "per_class", "confusion", "views_per_video", "clips_per_s", "wall_seconds",
            "provenance", "cost", "finished"}
PROVENANCE = {"config", "config_hash", "code_version", "torch", "python", "device", "seed"}


def test_metrics_by_hand():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([0, 2, 1, 2])  # right, wrong (2nd), wrong (3rd), right
    m = classification_metrics(logits, labels, ["a", "b", "c"], twins=[1, 0, None])
    assert m["top1"] == 0.5 and m["top5"] == 1.0 and m["topk_k"] == 3
    assert m["confusion"] == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    assert m["per_class"]["c"] == {"accuracy": 0.5, "count": 2} and m["per_class"]["b"]["accuracy"] == 0.0
    # twins: only the videos of classes a and b; a beats b in video 0, b loses to a in video 2
    assert m["twins"] == {"num_videos": 2, "pair_accuracy": 0.5, "twin_confusion": 0.5}


@pytest.mark.parametrize("model", ["tsn", "tin"])
def test_generate_train_evaluate(tmp_path, write_config, model):
    config = write_config(model, optim={"epochs": 1})
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", "--run", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert REQUIRED <= set(m) and PROVENANCE <= set(m["provenance"])
    assert m["num_videos"] == 8 and m["views_per_video"] == 1 and 0 <= m["top1"] <= m["top5"] <= 1
    assert sum(map(sum, m["confusion"])) == 8 and len(m["per_class"]) == 12
    assert "moving_left_to_right" in m["per_class"] and m["twins"]["num_videos"] == 8
    summary = json.loads((run / "train_summary.json").read_text())
    assert m["provenance"]["config_hash"] == summary["config_hash"] == m["provenance"]["train_config_hash"]
    # single-view evaluation of the last checkpoint = the training's last validation
    assert m["top1"] == pytest.approx(summary["final"]["top1"])
    if model == "tsn":
        assert m["offsets"] == {} and pd.read_csv(run / "metrics.offsets.csv").empty
        return
    table = pd.read_csv(run / "metrics.offsets.csv")
    assert table.layer.nunique() == 8  # every ResNet-18 block has a TIN op
    assert (table[table.kind == "offset"].groupby("layer").size() == 2).all()  # 2 groups
    assert (table[table.kind == "weight"].groupby("layer").size() == 2 * 4).all()  # x 4 frames
    assert table.value.between(-2, 2).all() and (run / "metrics.offsets.csv.provenance.json").exists()
    first = m["offsets"][table.layer.iloc[0]]
    assert len(first["offsets"]) == 2 and len(first["weights"]) == 4 and len(first["weights"][0]) == 2
    # offsets start at +0.5 for every group; one epoch of training moves them
    assert any(abs(v - 0.5) > 1e-6 for layer in m["offsets"].values() for v in layer["offsets"])

    # multi-view: 2 clips x 3 crops averaged per video, written elsewhere, run metrics untouched
    before = (run / "metrics.json").read_text()
    out = tmp_path / "views.json"
    assert main(["evaluate", "--run", str(run), "--set", "data.test_clips=2", "--set", "data.test_crops=3",
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["views_per_video"] == 6 and (run / "metrics.json").read_text() == before


def test_evaluate_errors(tmp_path, write_config, capsys):
    assert main(["evaluate", "--run", str(tmp_path / "missing")]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    config = write_config("tsn")
    assert main(["evaluate", "--config", str(config), "--checkpoint", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path / "m.json")]) == 2
    assert "none.pt does not exist" in capsys.readouterr().err
    truncated = tmp_path / "half.pt"
    torch.save({"model": torch.nn.Linear(300, 300).state_dict()}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    assert main(["evaluate", "--config", str(config), "--checkpoint", str(truncated),
                 "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert f"{truncated}: not a readable checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()


def test_train_and_evaluate_on_video_files(tmp_path, write_config, capsys):
    """A webm dataset through train and evaluate, decoded in 2 loader worker processes; a video that
    breaks after training stops evaluation with its name and list line (exit 2)."""
    from tinlab.data.synthetic import generate

    root = generate("synthetic-motion", tmp_path / "webm", format="webm", seed=1, num_train=16, num_val=8, size=32,
                    min_frames=8, max_frames=12)
    config = write_config("tin", data={"root": str(root), "num_workers": 2}, optim={"epochs": 1})
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", "--run", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["num_videos"] == 8 and 0 <= m["top1"] <= 1
    victim = (root / "val.txt").read_text().splitlines()[3].split()[0]
    (root / "videos" / victim).write_bytes(b"not a video")
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert f"corrupt or unreadable video {root / 'videos' / victim} (listed at {root / 'val.txt'}:4)" in err
