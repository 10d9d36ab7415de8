"""The workflow on video files: the smoke profile with its dataset generated as H.264 mp4 files
(`generate: {format: mp4}`), Table 1 end to end through the video-file dataset."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from _snakemake import SMOKE, snakemake


@pytest.mark.slow
def test_smoke_table1_on_mp4_files(tmp_path):
    overlay = {"datasets": {"synthetic-motion": {"root": "data/smoke/synthetic-motion-mp4",
                                                 "generate": {"format": "mp4"}}},
               "table1": {"models": ["tsn", "tin"], "frames": [4]}}
    (tmp_path / "mp4.yaml").write_text(yaml.safe_dump(overlay))  # merged over the smoke profile key by key
    out = snakemake(tmp_path, "results/table1.csv", "--configfile", str(SMOKE), str(tmp_path / "mp4.yaml"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    data = tmp_path / "data" / "smoke" / "synthetic-motion-mp4"
    manifest = json.loads((data / "dataset.json").read_text())
    assert manifest["format"] == "mp4" and manifest["codec"] == "H.264" and manifest["splits"]["val"]["videos"] == 6
    assert len(list((data / "videos").glob("*.mp4"))) == 18
    table = pd.read_csv(tmp_path / "results" / "table1.csv")
    assert list(table.model) == ["tsn", "tin"] and table.val_top1.between(0, 100).all()
    metrics = json.loads((tmp_path / "results" / "runs" / "tin_T4_synthetic-motion" / "metrics.json").read_text())
    assert metrics["num_videos"] == 6
