"""Video files: tinlab/data/video.py (PyAV decoding of only the needed frames) and the video-file
datasets in tinlab/data/dataset.py (list formats, presets, errors), on generated mp4 and webm files."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from tinlab.data import build_dataset, generate
from tinlab.data.dataset import VideoFileDataset, VideoFrameDataset, parse_list_file
from tinlab.data.presets import get_preset
from tinlab.data.transforms import ToUint8, build_transforms
from tinlab.data.video import VideoReader, is_video_path, write_video
from tinlab.errors import DataError

T = 4


def moving_bar(n: int = 50, w: int = 48, h: int = 32) -> np.ndarray:
    """Frames whose red level says their index (8 i) and a bar that moves: decoding the wrong frame shows."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = 5 * i
        frames[i, 8:16, i % (w - 8):i % (w - 8) + 8, 1] = 255
    return frames


@pytest.fixture(scope="module", params=["mp4", "webm"])
def video(request, tmp_path_factory) -> tuple[Path, np.ndarray]:
    frames = moving_bar()
    path = tmp_path_factory.mktemp("video") / f"bar.{request.param}"
    write_video(path, frames, gop=10)  # 4:2:0, the chroma of videos as they ship
    return path, frames


@pytest.fixture(scope="module", params=["mp4", "webm"])
def video_root(request, tmp_path_factory, tiny) -> Path:
    return generate("synthetic-motion", tmp_path_factory.mktemp("gen") / request.param, format=request.param, **tiny)


# ---------------------------------------------------------------------------------------------- reader

def test_reader_counts_frames_and_decodes_the_right_ones(video) -> None:
    path, frames = video
    with VideoReader(path) as v:
        assert v.num_frames == len(frames) and v.size == (48, 32)
        assert v.key_frames[0] == 0 and len(v.key_frames) >= 4  # a key frame every 10 frames (x264: <= 10)
        got = v.frames([49, 7, 7, 23, 0])
    assert sorted(got) == [0, 7, 23, 49]
    for i, a in got.items():
        assert a.dtype == np.uint8 and a.shape == (32, 48, 3)
        assert abs(float(a[..., 0].mean()) - 5 * i) < 3  # the red level names the frame
        assert np.abs(a.astype(int) - frames[i]).mean() < 4  # lossy, but this frame


def test_seeking_gives_the_frames_of_a_sequential_decode(video) -> None:
    path, _ = video
    with VideoReader(path) as v:
        everything = v.frames(range(v.num_frames))
    for wanted in ([3, 17, 31, 45], [49], [0, 1, 2], [12, 11, 40]):
        with VideoReader(path) as v:
            got = v.frames(wanted)
        assert all(np.array_equal(got[i], everything[i]) for i in wanted)


def test_only_the_needed_frames_are_decoded(video, monkeypatch) -> None:
    """Frame 45 of 50 with a key frame at most every 10 frames: at most 10 frames decoded, not 46."""
    path, _ = video
    decoded = []
    with VideoReader(path) as v:
        v.num_frames
        real = type(v._container).decode

        def counting(self, *args, **kwargs):
            for frame in real(self, *args, **kwargs):
                decoded.append(frame.pts)
                yield frame

        monkeypatch.setattr(type(v._container), "decode", counting)
        v.frames([45])
    assert 1 <= len(decoded) <= 10 + 2, len(decoded)  # + frames the decoder reorders (B-frames)


def test_scaled_decoding(video) -> None:
    path, frames = video
    with VideoReader(path) as v:
        small = v.frames([10], size=(24, 16))[10]
    assert small.shape == (16, 24, 3) and abs(float(small[..., 0].mean()) - 50) < 3


# ---------------------------------------------------------------------------------------------- errors

def _expect(path: Path, match: str, where: str = "list.txt:3") -> None:
    with pytest.raises(DataError, match=match) as info:
        with VideoReader(path, where) as v:
            v.frames([0, v.num_frames - 1])
    assert str(path) in str(info.value) and where in str(info.value)


def test_bad_files_are_named(tmp_path, video) -> None:
    path, _ = video
    data = path.read_bytes()
    _expect(tmp_path / "missing.mp4", "missing video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    _expect(tmp_path / "empty.mp4", "corrupt or unreadable video")
    (tmp_path / "garbage.webm").write_bytes(os.urandom(5000))
    _expect(tmp_path / "garbage.webm", "corrupt or unreadable video")
    cut = tmp_path / f"cut{path.suffix}"
    cut.write_bytes(data[: len(data) // 3])  # a truncated download: an error naming it, or fewer frames
    try:                                     # (which a list giving the count turns into an error, below)
        with VideoReader(cut, "list.txt:3") as v:
            n = v.num_frames
            v.frames([n - 1])
        assert n < 50
    except DataError as e:
        assert str(cut) in str(e) and "list.txt:3" in str(e)
    with VideoReader(path) as v, pytest.raises(DataError, match="frame 50 requested from a video of 50"):
        v.frames([50])


def test_audio_only_file_has_no_video_stream(tmp_path) -> None:
    import av

    path = tmp_path / "sound.webm"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libopus", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
        frame.sample_rate = 48000
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    _expect(path, "no video stream")


def test_a_fifo_in_place_of_a_video_does_not_block(tmp_path) -> None:
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    done = []
    thread = threading.Thread(target=lambda: done.append(_expect(fifo, "not a regular")), daemon=True)
    thread.start()
    thread.join(10)
    assert done, "opening a FIFO blocked"


# ------------------------------------------------------------------------------------ lists and datasets

def test_list_formats(tmp_path) -> None:
    lists = tmp_path / "l.txt"
    lists.write_text("a/b.mp4 3\nc.webm 40 5\n")  # MMAction2's "<file> <label>" and TSM's three fields
    records = parse_list_file(lists, num_classes=10)
    assert [(r.path, r.num_frames, r.label) for r in records] == [("a/b.mp4", 0, 3), ("c.webm", 40, 5)]
    assert is_video_path("X.MKV") and not is_video_path("frames/123")
    for text, match in [("a.mp4 3\nfolder 12 3\n", "one list holds one kind"),
                        ("folder 3\n", "'<video path> <num_frames> <label>'"),
                        ("a.mp4 x\n", "integers"), ("a.mp4 99\n", "label 99 outside")]:
        lists.write_text(text)
        with pytest.raises(DataError, match=match):
            parse_list_file(lists, num_classes=10)


def test_generated_video_datasets_match_the_frame_dataset(video_root, motion_root) -> None:
    manifest = (video_root / "dataset.json").read_text()
    fmt = video_root.name
    assert f'"format": "{fmt}"' in manifest and (video_root / "videos").is_dir() and not (video_root / "frames").exists()
    for split in ("train", "val"):
        kw = dict(split=split, num_segments=T, input_size=28)
        videos, frames = build_dataset("synthetic-motion", video_root, **kw), build_dataset("synthetic-motion", motion_root, **kw)
        assert isinstance(videos, VideoFileDataset) and isinstance(frames, VideoFrameDataset)
        assert [(r.num_frames, r.label) for r in videos.records] == [(r.num_frames, r.label) for r in frames.records]
        items = [(videos[i], frames[i]) for i in range(len(videos))]
        for i, ((a, la), (b, lb)) in enumerate(items):
            assert la == lb and a.shape == b.shape == (T, 3, 28, 28) and a.dtype == torch.uint8
            # the same frames and crops: only the codecs' losses differ (the frames carry pixel noise,
            # which the codecs keep less exactly than JPEG at quality 90), far less than another video
            same = (a.float() - b.float()).abs().mean()
            other = (a.float() - items[(i + 1) % len(items)][1][0].float()).abs().mean()
            assert same < 10 and same < other / 3, (i, same, other)
    multi = build_dataset("synthetic-motion", video_root, split="val", num_segments=T, input_size=28,
                          test_clips=2, test_crops=3)
    assert multi[0][0].shape == (6, T, 3, 28, 28)


def test_frame_count_from_the_file_and_a_listed_count_that_is_too_high(video_root, tmp_path) -> None:
    lines = (video_root / "val.txt").read_text().splitlines()
    # "<file> <label>": the count comes from the file, and sampling is the same as with it listed
    (video_root / "two_fields.txt").write_text("".join(f"{v} {lab}\n" for v, _, lab in map(str.split, lines)))
    kw = dict(num_segments=T, train=False, transform=build_transforms(False, 28, False), num_classes=12)
    listed = VideoFileDataset(video_root, "val.txt", **kw)
    counted = VideoFileDataset(video_root, "two_fields.txt", **kw)
    assert torch.equal(listed[1][0], counted[1][0])
    name, n, label = lines[0].split()
    (video_root / "too_many.txt").write_text(f"{name} {int(n) + 5} {label}\n")
    with pytest.raises(DataError, match=rf"has {n} frames, fewer than the {int(n) + 5} listed at .*too_many.txt:1"):
        VideoFileDataset(video_root, "too_many.txt", **kw)[0]


def test_missing_and_corrupt_videos_name_the_list_line(video_root, tmp_path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(video_root, root)
    lines = (root / "val.txt").read_text().splitlines()
    victim = root / "videos" / lines[1].split()[0]
    victim.unlink()
    with pytest.raises(DataError, match=rf"missing video .*{victim.name} .*val.txt:2"):
        build_dataset("synthetic-motion", root, split="val", num_segments=T, input_size=28, check_files=True)
    victim.write_bytes(b"\x00" * 100)
    ds = build_dataset("synthetic-motion", root, split="val", num_segments=T, input_size=28, check_files=True)
    with pytest.raises(DataError, match=rf"corrupt or unreadable video .*{victim.name} \(listed at .*val.txt:2\)"):
        ds[1]


def test_video_presets_and_split_folders(tmp_path) -> None:
    assert get_preset("something-v2-video").video_dir == "videos"
    kinetics = get_preset("kinetics-video")
    assert kinetics.video_dir == "videos_{split}" and kinetics.flip and kinetics.num_classes == 400
    root = tmp_path / "k400"
    for split in ("train", "val"):
        (root / f"videos_{split}" / "abseiling").mkdir(parents=True)
        write_video(root / f"videos_{split}" / "abseiling" / "x.mp4", moving_bar(12))
        (root / f"kinetics400_{split}_list_videos.txt").write_text("abseiling/x.mp4 0\n")
    for split in ("train", "val"):
        ds = build_dataset("kinetics-video", root, split=split, num_segments=T, input_size=16, check_files=True)
        assert ds.video_path(ds.records[0]) == root / f"videos_{split}" / "abseiling" / "x.mp4"
        assert ds[0][0].shape == (T, 3, 16, 16)


def test_large_frames_are_decoded_at_reduced_size(tmp_path) -> None:
    """JPEG frames and videos four times the needed size decode at a quarter (DCT scaling / swscale);
    the clip stays close to the one from full-size decoding."""
    from PIL import Image

    rng = np.random.default_rng(0)
    big = np.kron(rng.integers(0, 256, (6, 5, 6, 3)), np.ones((1, 32, 32, 1))).astype(np.uint8)  # (6, 160, 192, 3)
    (tmp_path / "frames" / "v").mkdir(parents=True)
    for i, f in enumerate(big, 1):
        Image.fromarray(f).save(tmp_path / "frames" / "v" / f"{i:05d}.jpg", quality=95)
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "v.mp4", big, quality=10)
    (tmp_path / "f.txt").write_text("v 6 0\n")
    (tmp_path / "m.txt").write_text("v.mp4 0\n")
    test = build_transforms(False, 32, flip=False, scale_size=36)  # needs a short side of 36: 160 -> 40
    assert test.needed_short_side() == 36
    sizes = []
    for list_file, cls in (("f.txt", VideoFrameDataset), ("m.txt", VideoFileDataset)):
        kw = dict(num_segments=T, train=False, num_classes=1)
        extra = dict(template="{:05d}.jpg") if cls is VideoFrameDataset else {}
        ds = cls(tmp_path, list_file, transform=test, **kw, **extra)
        full = cls(tmp_path, list_file, transform=_FullSize(test), **kw, **extra)
        reduced, reference = ds[0][0].float(), full[0][0].float()
        assert reduced.shape == reference.shape == (T, 3, 32, 32)
        assert (reduced - reference).abs().mean() < 8
        num, frames = ds._read(0, ds.records[0])
        sizes.append(next(iter(frames.values())).shape)
    assert sizes == [(40, 48, 3), (40, 48, 3)]


class _FullSize:
    """The same transform without the reduced-size hint."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, frames, rng):
        return self.transform(frames, rng)


def test_to_uint8_refuses_float_frames() -> None:
    with pytest.raises(TypeError, match="uint8"):
        ToUint8()(torch.zeros(2, 3, 4, 4), None)
