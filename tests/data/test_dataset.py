"""tinlab/data/dataset.py: list files, segment sampling, the frame dataset, loaders and their errors."""
from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinlab.data.presets import DATASET_PRESETS
from tinlab.data.dataset import (VideoFrameDataset, build_dataloader, build_dataset,
                                 get_preset, parse_list_file, sample_indices, set_epoch)
from tinlab.data.transforms import ToTensor, build_transforms
from tinlab.errors import DataError

T = 4


def _raw(root: Path, list_file: str = "val.txt", **kw) -> VideoFrameDataset:
    """Frames as [0, 1] tensors, no crop: a clip can be compared with the files pixel for pixel."""
    kw = {"num_segments": T, "template": "{:05d}.jpg", "train": False, **kw}
    return VideoFrameDataset(root, list_file, transform=ToTensor(normalize=False), num_classes=12, **kw)


def _frame(root: Path, vid: str, number: int) -> torch.Tensor:
    return ToTensor(normalize=False)([Image.open(root / "frames" / vid / f"{number:05d}.jpg")], None)[0]


def _copy(root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(root, tmp_path / "copy"))


# ---------------------------------------------------------------------------------------------- lists

def test_parse_list_file(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("a/b 10 3\n\nc 1 0\n")
    records = parse_list_file(path, num_classes=4)
    assert [(r.path, r.num_frames, r.label) for r in records] == [("a/b", 10, 3), ("c", 1, 0)]
    assert records[1].where == f"{path}:3"


@pytest.mark.parametrize("text, line, message", [
    ("a 10 3\nb 10\n", 2, "expected '<video path> <num_frames> <label>'"),
    ("a 10 3\nb 10 3 4\n", 2, "expected"),
    ("a ten 3\n", 1, "must be integers"),
    ("a 10 3\nb 10 0\n\nc 0 1\n", 4, "num_frames must be >= 1"),
    ("a 10 3\nb 10 12\n", 2, r"label 12 outside \[0, 12\)"),
    ("a 10 -1\n", 1, "label -1 outside"),
])
def test_list_file_errors_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        parse_list_file(path, num_classes=12)
    assert f"{path}:{line}:" in str(err.value)


def test_missing_or_empty_list_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "nope.txt")):
        parse_list_file(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="lists no videos"):
        parse_list_file(tmp_path / "empty.txt")


# ------------------------------------------------------------------------------------------- sampling

def test_test_sampling_is_segment_centres() -> None:
    assert sample_indices(16, 4).tolist() == [[2, 6, 10, 14]]
    for n in range(8, 70):  # TSM's test sampler for n >= T
        tick = n / 8
        assert sample_indices(n, 8)[0].tolist() == [int(tick / 2 + tick * i) for i in range(8)]
    # Two clips: the 1/4 and 3/4 points of every segment.
    assert sample_indices(16, 4, num_clips=2).tolist() == [[1, 5, 9, 13], [3, 7, 11, 15]]


def test_short_videos_repeat_frames_in_order() -> None:
    assert sample_indices(3, 8).tolist() == [[0, 0, 0, 1, 1, 2, 2, 2]]
    assert sample_indices(1, 4).tolist() == [[0, 0, 0, 0]]
    rng = np.random.default_rng(0)
    for n in range(1, 8):
        idx = sample_indices(n, 8, rng)[0]
        assert (np.diff(idx) >= 0).all() and idx.max() < n
    with pytest.raises(ValueError, match="0 frames"):
        sample_indices(0, 8)


def test_train_sampling_stays_in_segments_and_reaches_every_frame() -> None:
    rng, n, t = np.random.default_rng(0), 19, 4
    seen = set()
    for _ in range(300):
        idx = sample_indices(n, t, rng)[0]
        for i, j in enumerate(idx):  # frame j covers part of segment [i n/t, (i+1) n/t)
            assert i * n / t < j + 1 and j < (i + 1) * n / t
        seen.update(idx.tolist())
    assert seen == set(range(n))  # including the last n % t frames, which TSN's sampler never draws


# -------------------------------------------------------------------------------------------- dataset

def test_clip_shapes_and_dtypes(motion_root: Path) -> None:
    train = build_dataset("synthetic-motion", motion_root, split="train", num_segments=T, input_size=28)
    clip, label = train[0]
    assert clip.shape == (T, 3, 28, 28) and clip.dtype == torch.uint8  # normalised on the device
    assert label == int((motion_root / "train.txt").read_text().split()[2])
    val = build_dataset("synthetic-motion", motion_root, split="val", num_segments=T, input_size=28,
                        test_clips=2, test_crops=3)
    clips, _ = val[1]
    assert clips.shape == (6, T, 3, 28, 28)  # (clips x crops, T, 3, H, W), clip-major
    assert not torch.equal(clips[0], clips[3])  # the two temporal clips use different frames


def test_test_clip_holds_the_segment_centre_frames(motion_root: Path) -> None:
    ds = _raw(motion_root)
    for index, rec in enumerate(ds.records):
        clip, label = ds[index]
        centres = [(2 * i + 1) * rec.num_frames // (2 * T) for i in range(T)]
        assert ds.indices(index).tolist() == [centres] and label == rec.label
        for t, c in enumerate(centres):
            assert torch.equal(clip[t], _frame(motion_root, rec.path, c + 1))  # files are 1-indexed


def test_train_sampling_reproducible_by_seed_and_varies_by_epoch(motion_root: Path) -> None:
    def draws(seed: int, epoch: int) -> list[list[int]]:
        ds = _raw(motion_root, "train.txt", train=True, seed=seed)
        ds.set_epoch(epoch)
        return [ds.indices(i).tolist() for i in range(len(ds))]

    assert draws(0, 0) == draws(0, 0)
    assert draws(0, 0) != draws(0, 1) and draws(0, 0) != draws(1, 0)
    ds = _raw(motion_root, "train.txt", train=True)
    ds.set_epoch(1)
    clip, _ = ds[2]
    rec = ds.records[2]
    for t, j in enumerate(ds.indices(2)[0]):
        assert torch.equal(clip[t], _frame(motion_root, rec.path, j + 1))
    # Augmentation is seeded by (seed, epoch, index) too: a fresh dataset object after the global RNGs moved
    # gives the same clip, another epoch another one (a transform drawing from a global RNG fails this).
    build = lambda: build_dataset("synthetic-motion", motion_root, split="train", num_segments=T, input_size=20)
    first = build()[3][0]
    torch.manual_seed(123), np.random.seed(5), random.seed(7)
    again = build()
    assert torch.equal(first, again[3][0])
    again.set_epoch(1)
    assert not torch.equal(first, again[3][0])


def test_short_video_is_padded_by_repetition(motion_root: Path, tmp_path: Path) -> None:
    vid, n, label = (motion_root / "val.txt").read_text().split("\n")[0].split()
    (motion_root / "short.txt").exists() and pytest.fail("fixture polluted")
    root = _copy(motion_root, tmp_path)
    (root / "short.txt").write_text(f"{vid} 3 {label}\n")
    ds = _raw(root, "short.txt", num_segments=8)
    clip, _ = ds[0]
    assert clip.shape[0] == 8
    for t, number in enumerate([1, 1, 1, 2, 2, 3, 3, 3]):
        assert torch.equal(clip[t], _frame(root, vid, number))


# --------------------------------------------------------------------------------------------- errors

def test_missing_dataset_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"dataset folder {tmp_path / 'absent'}"):
        _raw(tmp_path / "absent")


def test_list_line_pointing_at_missing_frames(motion_root: Path, tmp_path: Path) -> None:
    root = _copy(motion_root, tmp_path)
    lines = (root / "val.txt").read_text().splitlines()
    vid, n, label = lines[1].split()
    lines[1] = f"{vid} {int(n) + 40} {label}"  # more frames than the folder holds
    (root / "val.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        _raw(root, check_files=True)
    message = str(err.value)
    assert str(root / "frames" / vid / f"{int(n) + 1:05d}.jpg") in message
    assert f"{root / 'val.txt'}:2" in message
    ds = _raw(root)  # without the check, loading the item fails with the same information
    ds[0]
    with pytest.raises(DataError, match=f"{root / 'val.txt'}:2"):
        ds[1]
    shutil.rmtree(root / "frames" / vid)
    with pytest.raises(DataError, match=str(root / "frames" / vid / "00001.jpg")):
        _raw(root, check_files=True)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_jpeg_is_named(motion_root: Path, tmp_path: Path, damage: str) -> None:
    root = _copy(motion_root, tmp_path)
    ds = _raw(root)
    rec = ds.records[0]
    bad = root / "frames" / rec.path / f"{ds.indices(0)[0, 1] + 1:05d}.jpg"
    data = bad.read_bytes()
    bad.write_bytes({"garbage": b"not a jpeg at all", "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(DataError, match="corrupt or unreadable frame") as err:
        ds[0]
    assert str(bad) in str(err.value) and f"{root / 'val.txt'}:1" in str(err.value)


@pytest.mark.parametrize("path", ["../../elsewhere", "/etc", "videos/../../x"])
def test_list_paths_must_stay_inside_the_dataset(tmp_path: Path, path: str) -> None:
    (tmp_path / "list.txt").write_text(f"ok 4 0\n{path} 4 1\n")
    with pytest.raises(DataError, match=f"list.txt:2: video path '{re.escape(path)}' leaves the dataset folder"):
        parse_list_file(tmp_path / "list.txt")


@pytest.mark.parametrize("link", ["folder", "frame"])
def test_a_symbolic_link_out_of_the_dataset_is_refused(motion_root: Path, tmp_path: Path, link: str) -> None:
    """The list text stays inside (no '..', not absolute), but the file system leads out: a video folder that
    is a link to a folder elsewhere, or one frame that is a link to a file elsewhere."""
    root = _copy(motion_root, tmp_path)
    outside = Path(shutil.copytree(motion_root / "frames", tmp_path / "outside"))
    ds = _raw(root)
    rec = ds.records[0]
    folder = root / "frames" / rec.path
    if link == "folder":
        shutil.rmtree(folder)
        folder.symlink_to(outside / rec.path)
    else:
        frame = folder / f"{ds.indices(0)[0, 0] + 1:05d}.jpg"
        frame.unlink()
        frame.symlink_to(outside / rec.path / frame.name)
    with pytest.raises(DataError, match=r"resolves to .*outside.*, outside the dataset folder") as err:
        _raw(root)[0]
    assert f"{root / 'val.txt'}:1" in str(err.value)
    inside = root / "frames" / "alias"  # a link that stays inside the dataset is fine
    inside.symlink_to(root / "frames" / ds.records[1].path)
    (root / "alias.txt").write_text(f"alias {ds.records[1].num_frames} {ds.records[1].label}\n")
    assert torch.equal(_raw(root, "alias.txt")[0][0], _raw(root)[1][0])


def test_a_fifo_in_place_of_a_frame_is_refused_not_waited_on(motion_root: Path, tmp_path: Path) -> None:
    root = _copy(motion_root, tmp_path)
    ds = _raw(root)
    rec = ds.records[0]
    fifo = root / "frames" / rec.path / f"{ds.indices(0)[0, 0] + 1:05d}.jpg"
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=f"{fifo} \\(not a regular file\\)"):
        ds[0]  # opening it would block forever
    with pytest.raises(DataError, match="not a regular file"):
        _raw(root, check_files=True)


def test_label_out_of_range_names_file_and_line(motion_root: Path) -> None:
    with pytest.raises(ValueError, match=rf"{motion_root / 'train.txt'}:\d+: label \d+ outside \[0, 2\)"):
        VideoFrameDataset(motion_root, "train.txt", num_segments=T, template="{:05d}.jpg", train=True,
                          transform=None, num_classes=2)


# -------------------------------------------------------------------------------------------- loaders

def test_loader_batches_are_reproducible_and_epoch_dependent(motion_root: Path) -> None:
    def epoch_batches(num_workers: int, epoch: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        ds = build_dataset("synthetic-motion", motion_root, split="train", num_segments=T, input_size=28)
        loader = build_dataloader(ds, batch_size=3, train=True, num_workers=num_workers, seed=seed)
        set_epoch(loader, epoch)
        return list(loader)

    first = epoch_batches(0, 0)
    assert len(first) == 2 and first[0][0].shape == (3, T, 3, 28, 28)  # 8 videos, drop_last
    assert first[0][0].dtype == torch.uint8 and first[0][1].dtype == torch.int64
    again = epoch_batches(2, 0)  # worker processes do not change anything
    assert len(again) == len(first)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    later = epoch_batches(0, 1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, later))


def test_eval_loader_keeps_order_and_every_video(motion_root: Path) -> None:
    ds = build_dataset("synthetic-motion", motion_root, split="val", num_segments=T, input_size=28)
    labels = torch.cat([y for _, y in build_dataloader(ds, batch_size=3, train=False)])
    assert labels.tolist() == [r.label for r in ds.records]


# -------------------------------------------------------------------------------------------- presets

def test_presets() -> None:
    assert DATASET_PRESETS["something-v1"].template.format(1) == "00001.jpg"
    assert DATASET_PRESETS["something-v2"].template.format(1) == "000001.jpg"
    assert DATASET_PRESETS["kinetics"].template.format(7) == "img_00007.jpg"
    assert {n for n, p in DATASET_PRESETS.items() if not p.flip} == {
        "something-v1", "something-v2", "something-v2-video", "jester", "synthetic-motion"}
    assert get_preset("something-v1", num_classes=10, train_list="t.txt").num_classes == 10
    assert DATASET_PRESETS["something-v1"].num_classes == 174  # overrides do not leak
    with pytest.raises(KeyError, match="something-v3"):
        get_preset("something-v3")


def test_motion_preset_never_flips(motion_root: Path) -> None:
    transform = build_dataset("synthetic-motion", motion_root, split="train", num_segments=T,
                              input_size=28).transform
    assert "Flip" not in repr(transform)
    assert "Flip" in repr(build_transforms(True, 28, flip=DATASET_PRESETS["synthetic-appearance"].flip))
