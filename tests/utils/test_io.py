"""tinlab/utils/io.py: atomic writes with ordinary permissions, orphan cleanup, strict YAML and UTF-8."""
from __future__ import annotations

import os

import pytest
import torch

from tinlab.errors import ConfigError, DataError
from tinlab.utils.io import (atomic_save, atomic_write, atomic_write_text, current_umask, read_text, read_yaml,
                             remove_orphans)


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


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    orphan = tmp_path / f".table.csv.{pid}.x1y2.tmp"
    orphan.write_text("half")
    other = tmp_path / f".other.csv.{pid}.x1y2.tmp"
    other.write_text("half")
    atomic_write_text(tmp_path / "table.csv", "full\n")
    assert not orphan.exists() and other.exists()  # only the orphans of the file written
    assert remove_orphans(tmp_path) == [other] and not other.exists()


def test_duplicate_yaml_keys_and_non_utf8_files_name_file_and_line(tmp_path):
    dup = tmp_path / "run.yaml"
    dup.write_text("optim:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"run.yaml: not valid YAML: .*duplicate key 'lr' \(first at line 2\).*line 4"):
        read_yaml(dup)
    latin = tmp_path / "train.txt"
    latin.write_bytes(b"video1 10 0\nvid\xe9o2 10 1\n")
    with pytest.raises(DataError, match=r"train.txt:2: not UTF-8 text \(byte 0xe9"):
        read_text(latin)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"model:\n  name: t\xefn\n")
    with pytest.raises(ConfigError, match="bad.yaml:2: not UTF-8"):
        read_yaml(bad)
