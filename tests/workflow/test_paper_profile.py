"""The paper profile end to end on a stand-in: a small dataset in Something-Something V1 layout (frames
directly under the root, TSM's list names), the profile's own rules, recipe and options, sizes
overridden to toy scale by an overlay file; plus its published-checkpoint target on a checkpoint
written in the official TSM layout."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from _snakemake import REPO, snakemake

import tinlab
from tinlab.data import generate
from tinlab.models.checkpoints import save_as

PAPER = REPO / "workflow" / "config" / "paper.yaml"
TOY = {"backbone": "resnet18", "width_mult": 0.25}


def something_v1(root):
    """Something-Something V1 as TSM prepares it: <root>/<video>/00001.jpg, {train,val}_videofolder.txt."""
    generated = generate("synthetic-motion", root.with_name("generated"), seed=3, num_train=12, num_val=6, size=32,
                         min_frames=8, max_frames=12)
    root.mkdir()
    for video in (generated / "frames").iterdir():
        shutil.move(str(video), root / video.name)
    for split in ("train", "val"):
        shutil.copy(generated / f"{split}.txt", root / f"{split}_videofolder.txt")
    return root


@pytest.mark.slow
def test_paper_profile_table1_and_published_checkpoints_on_a_stand_in(tmp_path):
    data = something_v1(tmp_path / "sth-v1")
    checkpoint = tmp_path / "TSM_something_RGB_toy.pth"
    save_as(tinlab.create_model("tsm", num_classes=174, num_segments=8, **TOY), checkpoint, "tsm-official")
    overlay = {  # toy sizes only: the recipe, the models, the frames and the options stay the paper profile's
        "datasets": {"something-v1": {"root": str(data), "preset": {"frame_dir": ""}}},
        "base": {"model": TOY, "data": {"input_size": 32, "batch_size": 4, "num_workers": 0},
                 "optim": {"epochs": 1}, "run": {"device": "cpu"}},
        "table1": {"frames": [8]},
        # at width 0.25 the first stage's 16 channels // 4 are too few for 4 groups + 4 reverse groups: the
        # config is checked whole (every table's models are built at parse), so the ablation gets what fits
        "table5": {"options": {"shift_div": 2}},
        "latency": {"device": "cpu", "dtype": "float32", "batch": 1, "threads": 1, "rounds": 1, "warmup": 0,
                    "modes": ["infer"], "trace": False},
        "resources": {"train_threads": 1, "train_mem_mb": 2000, "gpu": 0},
        "published": {"dataset": "something-v1", "frames": 8, "checkpoints": {"tsm": str(checkpoint)}},
    }
    paper = yaml.safe_load(PAPER.read_text())
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(overlay))  # merged over the profile key by key
    out = snakemake(tmp_path, "results/table1.csv", "results/table1_published.csv",
                    "--configfile", str(PAPER), str(tmp_path / "toy.yaml"), timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table1 = pd.read_csv(tmp_path / "results" / "table1.csv")
    assert list(table1.model) == paper["table1"]["models"] and set(table1.dataset) == {"something-v1"}
    run = yaml.safe_load((tmp_path / "results" / "runs-paper" / "configs" / "tin_T8_something-v1.yaml").read_text())
    assert run["optim"]["recipe"] == "paper" and (run["optim"]["lr"], run["optim"]["bn"]) == (0.005, "frozen")
    assert run["data"]["preset"] == {"frame_dir": ""} and run["model"]["backbone"] == "resnet18"
    published = pd.read_csv(tmp_path / "results" / "table1_published.csv").iloc[0]
    assert (published.model, published.published_top1) == ("tsm", 45.6)
    metrics = json.loads((tmp_path / "results" / "runs-paper" / "published-tsm_T8_something-v1" / "metrics.json")
                         .read_text())
    assert metrics["checkpoint_format"] == "tsm-official" and metrics["num_videos"] == 6
