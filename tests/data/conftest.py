"""Tiny generated datasets shared by the data tests (generated once per session, ~1 s)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tinlab.data.synthetic import generate

TINY = dict(seed=3, num_train=8, num_val=4, size=32, min_frames=8, max_frames=12)


@pytest.fixture(scope="session")
def tiny() -> dict[str, int]:
    """Generation parameters of the tiny datasets (test modules are not a package: no imports)."""
    return dict(TINY)


@pytest.fixture(scope="session")
def motion_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("synthetic-motion", tmp_path_factory.mktemp("gen") / "motion", **TINY)


@pytest.fixture(scope="session")
def appearance_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("synthetic-appearance", tmp_path_factory.mktemp("gen") / "appearance", **TINY)
