"""tinlab/data/synthetic.py: layout, determinism, the twin property, atomic and idempotent writes."""
from __future__ import annotations

import argparse
import io
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinlab.__main__ import main
from tinlab.data import synthetic
from tinlab.data.synthetic import (DatasetExistsError, SyntheticParams, add_arguments, dataset_video,
                                   generate, render_video, run)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _siblings(root: Path) -> list[str]:
    return sorted(p.name for p in root.parent.iterdir() if p.name != root.name)


def test_layout_and_list_files(motion_root: Path, tiny: dict[str, int]) -> None:
    assert sorted(p.name for p in motion_root.iterdir()) == [
        "classes.txt", "dataset.json", "frames", "train.txt", "twins.json", "val.txt"]
    classes = (motion_root / "classes.txt").read_text().splitlines()
    assert classes == list(synthetic.MOTION_CLASSES) and len(classes) == 12
    listed = set()
    for split, count in (("train", 8), ("val", 4)):
        lines = (motion_root / f"{split}.txt").read_text().splitlines()
        assert len(lines) == count
        for line in lines:
            assert re.fullmatch(rf"{split}\d{{5}} \d+ \d+", line), line
            vid, n, label = line.split()
            assert 8 <= int(n) <= 12 and 0 <= int(label) < 12
            names = sorted(p.name for p in (motion_root / "frames" / vid).iterdir())
            assert names == [f"{i:05d}.jpg" for i in range(1, int(n) + 1)]  # 1-indexed, none extra
            listed.add(vid)
    assert listed == {p.name for p in (motion_root / "frames").iterdir()}
    with Image.open(motion_root / "frames" / "train00000" / "00001.jpg") as img:
        assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (32, 32))
    manifest = json.loads((motion_root / "dataset.json").read_text())
    assert manifest["params"] == {"name": "synthetic-motion", **tiny}
    assert manifest["splits"]["train"]["videos"] == 8 and manifest["num_classes"] == 12
    assert manifest["generator_version"] == synthetic.GENERATOR_VERSION and manifest["tinlab_version"]
    assert motion_root.stat().st_mode & 0o077, "the dataset folder must not stay private like a mkdtemp"


def test_twins_files(motion_root: Path, appearance_root: Path) -> None:
    twins = json.loads((motion_root / "twins.json").read_text())
    assert len(twins) == 12 and all(twins[twins[i]] == i != twins[i] for i in range(12))
    assert json.loads((appearance_root / "twins.json").read_text()) == [None] * 12


def test_same_seed_gives_byte_identical_files(tmp_path: Path, motion_root: Path,
                                              tiny: dict[str, int]) -> None:
    again = generate("synthetic-motion", tmp_path / "again", **tiny, workers=2)  # worker count is irrelevant
    assert _tree(again) == _tree(motion_root)
    other = generate("synthetic-motion", tmp_path / "other", **{**tiny, "seed": 4})
    assert (other / "train.txt").read_bytes() != (again / "train.txt").read_bytes()


def test_files_hold_the_rendered_video(motion_root: Path, tiny: dict[str, int]) -> None:
    params = SyntheticParams("synthetic-motion", **tiny)
    vid, label, frames = dataset_video(params, "val", 2)
    assert f"{vid} {len(frames)} {label}" == (motion_root / "val.txt").read_text().splitlines()[2]
    for i, frame in enumerate(frames, start=1):  # the same encoder settings give the same bytes
        encoded = io.BytesIO()
        Image.fromarray(frame).save(encoded, "JPEG", quality=synthetic.JPEG_QUALITY, subsampling=0)
        assert (motion_root / "frames" / vid / f"{i:05d}.jpg").read_bytes() == encoded.getvalue()


@pytest.mark.parametrize("pair", range(6))
def test_motion_twin_is_the_exact_time_reversal(pair: int) -> None:
    forward = render_video("synthetic-motion", 2 * pair, np.random.default_rng(pair), 16, 32)
    backward = render_video("synthetic-motion", 2 * pair + 1, np.random.default_rng(pair), 16, 32)
    assert np.array_equal(backward, forward[::-1])
    assert not np.array_equal(forward, forward[::-1])  # not a palindrome: the twins do differ
    # Same multiset of frames, so no frame-level (TSN) statistic separates the twins.
    assert sorted(f.tobytes() for f in forward) == sorted(f.tobytes() for f in backward)


def test_labels_are_balanced() -> None:
    labels = synthetic.split_labels(SyntheticParams("synthetic-appearance", num_train=30), "train")
    counts = Counter(labels.tolist())
    assert len(counts) == 12 and max(counts.values()) - min(counts.values()) <= 1


def test_appearance_class_sets_colour() -> None:
    # Class 0 is a red circle, class 1 a green one: the object's pixels say so whatever the motion.
    for label, channel in ((0, 0), (1, 1), (2, 2)):
        frames = render_video("synthetic-appearance", label, np.random.default_rng(7), 8, 64).astype(int)
        dominance = frames[..., channel] - np.delete(frames, channel, axis=-1).max(-1)
        assert (dominance > 80).mean() > 0.02, label


def test_generate_is_idempotent(tmp_path: Path, tiny: dict[str, int],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = generate("synthetic-appearance", tmp_path / "ds", **tiny)
    stamp = (root / "dataset.json").stat().st_mtime_ns
    frame_stamp = (root / "frames" / "val00000" / "00001.jpg").stat().st_mtime_ns
    monkeypatch.setattr(synthetic, "_write_video", lambda job: pytest.fail("rendered again"))
    assert generate("synthetic-appearance", tmp_path / "ds", **tiny) == root
    assert (root / "dataset.json").stat().st_mtime_ns == stamp
    assert (root / "frames" / "val00000" / "00001.jpg").stat().st_mtime_ns == frame_stamp
    assert _siblings(root) == []  # no temporary folders left behind


def test_other_parameters_are_refused_unless_overwrite(tmp_path: Path, tiny: dict[str, int]) -> None:
    root = generate("synthetic-motion", tmp_path / "ds", **tiny)
    with pytest.raises(DatasetExistsError, match=r"seed: on disk 3, requested 4") as err:
        generate("synthetic-motion", root, **{**tiny, "seed": 4})
    assert str(root) in str(err.value)
    with pytest.raises(DatasetExistsError, match="name"):
        generate("synthetic-appearance", root, **tiny)
    generate("synthetic-motion", root, **{**tiny, "seed": 4}, overwrite=True)
    assert json.loads((root / "dataset.json").read_text())["params"]["seed"] == 4
    assert _siblings(root) == []
    with pytest.raises(DatasetExistsError, match="format: on disk 'frames', requested 'mp4'"):
        generate("synthetic-motion", root, **{**tiny, "seed": 4}, format="mp4")
    with pytest.raises(ValueError, match="format must be one of frames, mp4, webm"):
        generate("synthetic-motion", tmp_path / "x", **tiny, format="avi")


def test_a_dataset_written_before_formats_existed_is_frames(tmp_path: Path, tiny: dict[str, int],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = generate("synthetic-motion", tmp_path / "ds", **tiny)
    manifest = json.loads((root / "dataset.json").read_text())
    del manifest["format"]  # as generator version 1 wrote it before video formats
    (root / "dataset.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(synthetic, "_write_video", lambda job: pytest.fail("rendered again"))
    assert generate("synthetic-motion", root, **tiny) == root


def test_foreign_folder_is_refused_and_empty_folder_is_used(tmp_path: Path, tiny: dict[str, int]) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetExistsError, match="no dataset.json"):
        generate("synthetic-motion", tmp_path / "mine", **tiny)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert (generate("synthetic-motion", tmp_path / "empty", **tiny) / "dataset.json").is_file()


def test_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          tiny: dict[str, int]) -> None:
    root = tmp_path / "ds"
    real, calls = synthetic._write_video, []

    def flaky(job):  # the dataset must not appear under its name before it is complete
        assert not root.exists()
        calls.append(job)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        return real(job)

    monkeypatch.setattr(synthetic, "_write_video", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate("synthetic-motion", root, **tiny)
    assert len(calls) == 5 and list(tmp_path.iterdir()) == []


def test_concurrent_generation_of_the_same_dataset(tmp_path: Path, motion_root: Path, tiny: dict[str, int],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root, real = tmp_path / "ds", synthetic._install

    def other_process_finished_first(tmp, dest, wanted, overwrite):
        shutil.copytree(motion_root, dest)
        return real(tmp, dest, wanted, overwrite)

    monkeypatch.setattr(synthetic, "_install", other_process_finished_first)
    assert generate("synthetic-motion", root, **tiny) == root
    assert _tree(root) == _tree(motion_root) and _siblings(root) == []


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="unknown synthetic dataset"):
        generate("synthetic-colour", "unused")
    with pytest.raises(ValueError, match="min_frames <= max_frames"):
        generate("synthetic-motion", "unused", min_frames=20, max_frames=10)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["synthetic-motion", "--root", str(tmp_path / "ds"), "--num-train", "4", "--num-val", "2",
            "--size", "24", "--min-frames", "4", "--max-frames", "5", "--workers", "1"]
    assert run(parser.parse_args(argv)) == 0
    assert "ready at" in capsys.readouterr().out
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["params"]["size"] == 24
    assert main(["generate", *argv, "--seed", "1"]) == 2
    assert "other parameters" in capsys.readouterr().err
    assert main(["generate", *argv, "--min-frames", "9"]) == 2
    assert "min_frames <= max_frames" in capsys.readouterr().err
    webm = [a if a != str(tmp_path / "ds") else str(tmp_path / "webm") for a in argv]
    assert main(["generate", *webm, "--format", "webm"]) == 0
    assert json.loads((tmp_path / "webm" / "dataset.json").read_text())["codec"] == "VP9"
    assert sorted(p.suffix for p in (tmp_path / "webm" / "videos").iterdir()) == [".webm"] * 6
