"""tinlab/utils/provenance.py: atomic writes (results and checkpoints) with ordinary permissions."""
from __future__ import annotations

import pytest
import torch

from tinlab.engine.runtime import atomic_save
from tinlab.utils.provenance import atomic_write, atomic_write_text, current_umask


def test_result_files_and_checkpoints_get_normal_permissions(tmp_path):
    text = atomic_write_text(tmp_path / "a.txt", "x")
    ckpt = atomic_save({"w": torch.ones(2)}, tmp_path / "sub" / "checkpoint.pt")
    for path in (text, ckpt):
        assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # not mkstemp's 0600
    assert text.read_text() == "x" and torch.equal(torch.load(ckpt)["w"], torch.ones(2))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "table.csv", "old\n")

    def crash(f):
        f.write(b"half a ")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(path, crash)
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
