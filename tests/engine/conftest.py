"""A tiny synthetic-motion dataset and tiny run configs shared by the engine tests."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import yaml

from tinlab.data.synthetic import generate

TINY_DATA = dict(seed=1, num_train=16, num_val=8, size=32, min_frames=8, max_frames=12)


@pytest.fixture(scope="session")
def motion_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("synthetic-motion", tmp_path_factory.mktemp("engine-data") / "motion", **TINY_DATA)


@pytest.fixture
def write_config(tmp_path: Path, motion_root: Path) -> Callable[..., Path]:
    """``write_config(model_name, **{section: updates})`` -> path of a tiny 2-epoch YAML config."""

    def write(name: str = "tin", filename: str = "config.yaml", **sections: dict) -> Path:
        raw = {
            "model": {"name": name, "backbone": "resnet18", "width_mult": 0.25, "small_stem": True},
            "data": {"root": str(motion_root), "num_segments": 4, "input_size": 32, "batch_size": 4},
            "optim": {"epochs": 2, "lr": 0.01, "bn": "train"},
        }
        for key, values in sections.items():
            raw.setdefault(key, {}).update(values)
        path = tmp_path / filename
        path.write_text(yaml.safe_dump(raw))
        return path

    return write
