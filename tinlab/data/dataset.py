"""Video datasets (TSN/TSM and MMAction2 list-file conventions), segment sampling and seeded loaders.

Two kinds of videos, told apart by the list file's paths (a path ending in a video extension, see
:data:`tinlab.data.video.VIDEO_EXTENSIONS`, is a video file):

* frame folders, ``ROOT/<frame_dir>/<video path>/<template.format(i)>`` for frames i = 1..num_frames,
  list lines ``<video path> <num_frames> <label>`` (TSM/TIN);
* video files, ``ROOT/<video_dir>/<video path>`` (mp4, webm, ...), list lines ``<video path> <label>``
  (MMAction2: the frame count is read from the file) or ``<video path> <num_frames> <label>`` (TSM/TIN:
  the count is checked against the file, which must have at least that many frames). Only the
  sampled frames are decoded (:class:`tinlab.data.video.VideoReader`).

``frame_dir`` and ``video_dir`` may contain ``{split}`` (``train`` or ``val``), for layouts that keep
the splits in separate folders (Kinetics in MMAction2: ``videos_train``, ``videos_val``).

Segment sampling (TSN, Wang et al. 2016, sec. 3.2), in continuous time: a video of n frames spans
[0, n), cut into T equal segments [i n/T, (i+1) n/T). Training takes a uniformly random time in each
segment, testing its midpoint (or, with ``test_clips = K``, the points (i + (k + 0.5) / K) n/T for clip
k), and the frame is the one covering that time, ``floor(time)``. For n >= T every segment holds at
least one frame and the test indices equal TSM's ``int(n/T/2 + n/T*i)``. A video SHORTER than T
(n < T) gets its frames repeated in order (n = 3, T = 8 -> frames 1 1 1 2 2 3 3 3 at test time); TSN
and TSM code repeat frame 1 T times instead. TSN's training sampler uses ``n // T`` frames per segment
and never samples the last ``n % T`` frames; here every frame can be drawn.
"""
from __future__ import annotations

import io
import math
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..errors import DataError
from ..utils.io import read_text
from .presets import get_preset
from .transforms import ClipTransform, Compose, ToTensor, build_transforms
from .video import VideoReader, is_video_path


@dataclass(frozen=True)
class VideoRecord:
    """One line of a list file; ``source`` and ``line`` say where it came from, for error messages.
    ``num_frames`` is 0 when the list does not give it (video files: read from the file)."""
    path: str
    num_frames: int
    label: int
    source: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def parse_list_file(path: str | Path, num_classes: int | None = None) -> list[VideoRecord]:
    """Read ``<video path> <num_frames> <label>`` lines, or ``<video file> <label>`` for video files
    (blank lines skipped); errors name file:line. All lines must be of one kind (frame folders or
    video files).

    A video path must stay inside the dataset folder: absolute paths and ``..`` components are refused
    (a list file is data, and data must not make tinlab read files elsewhere).

    Example (reads a file)::

        parse_list_file("data/synthetic-motion/val.txt", num_classes=12)[0]
        # VideoRecord(path='val00000', num_frames=40, label=3, source='data/...', line=1)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"list file {path} does not exist")
    records = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        video_file = is_video_path(fields[0])
        if len(fields) != 3 and not (video_file and len(fields) == 2):
            expected = ("'<video file> <label>' or '<video file> <num_frames> <label>'" if video_file else
                        "'<video path> <num_frames> <label>'")
            raise DataError(f"{path}:{lineno}: expected {expected}, got {line!r}")
        try:
            num_frames, label = (int(fields[1]), int(fields[2])) if len(fields) == 3 else (0, int(fields[1]))
        except ValueError:
            raise DataError(f"{path}:{lineno}: num_frames and label must be integers, got {line!r}") from None
        if num_frames < 1 and len(fields) == 3:
            raise DataError(f"{path}:{lineno}: num_frames must be >= 1, got {num_frames}")
        if label < 0 or (num_classes is not None and label >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise DataError(f"{path}:{lineno}: label {label} outside {bound}")
        video = PurePosixPath(fields[0])
        if video.is_absolute() or ".." in video.parts:
            raise DataError(f"{path}:{lineno}: video path {fields[0]!r} leaves the dataset folder; list paths "
                            f"must be relative and without '..'")
        if records and is_video_path(records[0].path) != video_file:
            kinds = ("video files", "frame folders")
            raise DataError(f"{path}:{lineno}: {fields[0]!r} is a {kinds[not video_file][:-1]}, but line "
                            f"{records[0].line} lists {kinds[video_file]}; one list holds one kind")
        records.append(VideoRecord(fields[0], num_frames, label, str(path), lineno))
    if not records:
        raise DataError(f"list file {path} lists no videos")
    return records


def lists_video_files(records: list[VideoRecord]) -> bool:
    """Whether the records name video files (else frame folders)."""
    return bool(records) and is_video_path(records[0].path)


def sample_indices(num_frames: int, num_segments: int, rng: np.random.Generator | None = None,
                   num_clips: int = 1) -> np.ndarray:
    """0-based frame indices, (num_clips, num_segments): random per segment if ``rng`` is given
    (training; one clip), else segment midpoints (see the module docstring).

    Example:
        >>> sample_indices(16, 4)
        array([[ 2,  6, 10, 14]])
        >>> sample_indices(3, 8)
        array([[0, 0, 0, 1, 1, 2, 2, 2]])
    """
    if num_frames < 1:
        raise ValueError(f"cannot sample from a video of {num_frames} frames")
    n, t = num_frames, num_segments
    if rng is not None:
        times = (np.arange(t) + rng.uniform(size=t)) * n / t
        return np.minimum(np.floor(times).astype(np.int64), n - 1)[None]
    # Exact integer form of floor((i + (k + 0.5) / K) * n / T).
    i, k = np.arange(t)[None, :], np.arange(num_clips)[:, None]
    return (2 * num_clips * i + 2 * k + 1) * n // (2 * num_clips * t)


class ClipDataset(Dataset):
    """Sampling, transforms and seeding shared by frame folders and video files; ``dataset[i]`` is
    ``(clip, label)``. Subclasses say how to count and read a video's frames.

    ``clip`` is uint8 (T, 3, H, W) for one view (float32 if the transform ends in
    :class:`~tinlab.data.transforms.ToTensor`; :func:`~tinlab.data.transforms.normalize_clips` makes a
    uint8 batch the model's input). With several test views (``test_clips`` > 1 and/or
    a transform ending in a :class:`~tinlab.data.transforms.MultiCrop`) it is (V, T, 3, H, W),
    V = test_clips x crops, clip-major; a batch is then (N, V, T, 3, H, W): fold V into N for the model
    and average the V scores per video. The randomness of item i (frames and augmentation) comes from
    ``default_rng([seed, epoch, i])``: call :meth:`set_epoch` (or :func:`set_epoch` on the loader)
    every epoch. ``transform(frames, rng)`` receives the T frames as a uint8 (T, 3, H, W) tensor with
    channels-last strides; None means ToTensor + ImageNet normalisation only.
    """

    media = "video"

    def __init__(self, root: str | Path, list_file: str | Path, *, num_segments: int, train: bool,
                 transform: ClipTransform | None, num_classes: int | None = None, media_dir: str = "",
                 test_clips: int = 1, check_files: bool = False, seed: int = 0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"dataset folder {self.root} does not exist")
        if num_segments < 1 or test_clips < 1 or (train and test_clips != 1):
            raise ValueError(f"need num_segments >= 1 and test_clips >= 1 (1 when training), "
                             f"got {num_segments}, {test_clips}")
        self.list_file = self.root / list_file
        self.media_root = self.root / media_dir.format(split="train" if train else "val")
        self.records = parse_list_file(self.list_file, num_classes)
        if lists_video_files(self.records) != (self.media == "file"):
            have = "video files" if lists_video_files(self.records) else "frame folders"
            raise DataError(f"{self.list_file} lists {have}; use "
                            f"{'VideoFileDataset' if have == 'video files' else 'VideoFrameDataset'} "
                            f"(build_dataset picks the right one)")
        self.num_segments, self.train = num_segments, train
        self.transform = transform if transform is not None else Compose([ToTensor()])
        self._real_root, self._real_folders = os.path.realpath(self.root), {}
        self.num_classes, self.test_clips, self.seed, self.epoch = num_classes, test_clips, seed, 0
        if check_files:
            self.check_files()

    def _inside(self, path: Path, rec: VideoRecord) -> None:
        """Refuse a file that resolves outside the dataset folder (a symbolic link in the dataset, e.g.
        ``frames/escape -> /``): list lines may only name files in it. The folder of a file is resolved
        once per folder; the file itself only when it is a link. A missing file passes (the caller says
        it is missing)."""
        parent = str(path.parent)
        real_parent = self._real_folders.get(parent)
        if real_parent is None:
            real_parent = self._real_folders[parent] = os.path.realpath(parent)
        real = os.path.join(real_parent, path.name)
        try:
            if stat.S_ISLNK(os.lstat(real).st_mode):
                real = os.path.realpath(real)
        except OSError:
            return
        if not real.startswith(self._real_root + os.sep):
            raise DataError(f"{path} (video listed at {rec.where}) resolves to {real}, outside the dataset folder "
                            f"{self.root} (through a symbolic link): tinlab reads only files inside it")

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of epoch ``epoch`` (training only; testing is deterministic)."""
        self.epoch = epoch

    def check_files(self, progress: bool = False) -> None:
        """Check that every listed video is on disk, without decoding anything, so that a missing one
        stops a run before its first epoch rather than when sampled."""
        from tqdm import tqdm

        bar = tqdm(self.records, desc=f"checking {self.list_file.name}", unit="video", leave=False,
                   disable=not (progress and sys.stderr.isatty()))
        for rec in bar:
            self._check(rec)

    def indices(self, index: int, num_frames: int | None = None) -> np.ndarray:
        """0-based frame indices of item ``index``, (views, T), as :meth:`__getitem__` uses them."""
        rec = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        n = rec.num_frames if num_frames is None else num_frames
        return sample_indices(n, self.num_segments, rng, self.test_clips)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        rec = self.records[index]
        num_frames, frames = self._read(index, rec)  # {frame index: uint8 (H, W, 3)}; short videos repeat
        clips = self.indices(index, num_frames)
        # Test-time transforms are deterministic; training seeds them with the epoch like the sampling.
        key = [self.seed, self.epoch, index, 1] if self.train else [self.seed, index, 1]
        rng = np.random.default_rng(key)
        views = []
        for clip in clips:
            # (T, 3, H, W) uint8, channels-last strides: the decoders' layout, no copy until the last step
            stacked = torch.from_numpy(np.stack([frames[i] for i in clip])).permute(0, 3, 1, 2)
            out = self.transform(stacked, rng)
            views.append(out if out.dim() == 5 else out[None])
        if len(views) == 1 and len(views[0]) == 1:
            return views[0][0], rec.label  # one view: no copy
        return torch.cat(views), rec.label

    def _reduced_side(self, width: int, height: int) -> int | None:
        """The short side to decode frames of this size at: full size divided by the largest power of 2
        (at most 8, as JPEG's scaled decoding offers) that keeps it at least what the transform's first
        step needs; None for full size."""
        needed = getattr(self.transform, "needed_short_side", lambda: None)()
        short = min(width, height)
        if not needed or short < 2 * needed:
            return None
        factor = 2
        while factor < 8 and short // (2 * factor) >= needed:
            factor *= 2
        return -(-short // factor)

    # -- what a subclass provides -------------------------------------------------------------------

    def _check(self, rec: VideoRecord) -> None:
        raise NotImplementedError

    def _read(self, index: int, rec: VideoRecord) -> tuple[int, dict[int, np.ndarray]]:
        """The video's frame count and the frames item ``index`` samples (uint8 (H, W, 3) RGB), keyed
        by frame index."""
        raise NotImplementedError


class VideoFrameDataset(ClipDataset):
    """Videos stored as frame folders: frames are read from ``root/frame_dir/<video path>/``
    (``frame_dir=""`` when list paths are relative to ``root``, as in TSM's Something-Something lists),
    named by ``template`` (1-based). See :class:`ClipDataset` for what an item is.

    Example (reads files)::

        ds = VideoFrameDataset("data/synthetic-motion", "train.txt", num_segments=8,
                               template="{:05d}.jpg", train=True,
                               transform=build_transforms(True, 56, flip=False), num_classes=12)
        clip, label = ds[0]  # clip: uint8 (8, 3, 56, 56)
    """

    media = "frames"

    def __init__(self, root: str | Path, list_file: str | Path, *, num_segments: int, template: str,
                 train: bool, transform: ClipTransform | None, num_classes: int | None = None,
                 frame_dir: str = "frames", test_clips: int = 1, check_files: bool = False,
                 seed: int = 0) -> None:
        self.template = template
        super().__init__(root, list_file, num_segments=num_segments, train=train, transform=transform,
                         num_classes=num_classes, media_dir=frame_dir, test_clips=test_clips,
                         check_files=check_files, seed=seed)

    @property
    def frame_root(self) -> Path:
        return self.media_root

    def frame_path(self, record: VideoRecord, index: int) -> Path:
        """Path of 0-based frame ``index`` (file numbers are 1-based)."""
        return self.frame_root / record.path / self.template.format(index + 1)

    def _check(self, rec: VideoRecord) -> None:
        folder = self.frame_root / rec.path
        try:
            present = {e.name for e in os.scandir(folder) if e.is_file()}  # FIFOs, devices, folders: no
        except OSError:
            present = set()
        for i in range(rec.num_frames):
            if self.template.format(i + 1) not in present:
                raise DataError(self._missing(rec, i))

    def _missing(self, rec: VideoRecord, index: int) -> str:
        return (f"missing frame {self.frame_path(rec, index)} (not a regular file) of video {rec.path!r} "
                f"listed with {rec.num_frames} frames at {rec.where}")

    def load_frame(self, rec: VideoRecord, index: int, reduce: bool = False) -> np.ndarray:
        """Frame ``index`` as uint8 (H, W, 3) RGB. JPEGs are decoded by libjpeg-turbo through simplejpeg,
        straight into the array (PIL decodes to its own RGBX buffer, which then costs a packing copy);
        with ``reduce``, at a reduced size when the transform allows it (JPEG's DCT scaling). Other
        formats, and JPEGs simplejpeg declines (CMYK, damaged files), go through PIL, whose error names
        what is wrong."""
        path = self.frame_path(rec, index)
        self._inside(path, rec)
        try:
            # stat first: opening a FIFO or a device in place of a frame would block or read forever
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise DataError(self._missing(rec, index))
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataError(self._missing(rec, index)) from None
        except OSError as e:
            raise DataError(f"unreadable frame {path} (video listed at {rec.where}): {e}") from None
        if data[:2] == b"\xff\xd8":
            try:
                return _decode_jpeg(data, self._reduced_side if reduce else None)
            except ValueError:
                pass  # PIL decodes what it can and names the fault otherwise
        try:
            with Image.open(io.BytesIO(data)) as img:
                if reduce and img.format == "JPEG":
                    side = self._reduced_side(*img.size)
                    if side is not None:
                        scale = side / min(img.size)
                        img.draft("RGB", (math.ceil(img.width * scale), math.ceil(img.height * scale)))
                return np.asarray(img.convert("RGB"))  # decodes now, so a corrupt file fails here, by name
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"corrupt or unreadable frame {path} (video listed at {rec.where}): "
                            f"{' '.join(str(e).split())}") from None

    def _read(self, index: int, rec: VideoRecord) -> tuple[int, dict[int, np.ndarray]]:
        wanted = np.unique(self.indices(index))
        return rec.num_frames, {int(i): self.load_frame(rec, int(i), reduce=True) for i in wanted}


def _decode_jpeg(data: bytes, reduced_side: Callable[[int, int], int | None] | None) -> np.ndarray:
    """A JPEG as uint8 (H, W, 3) RGB; ``reduced_side(width, height)`` may ask for a smaller decode."""
    import simplejpeg

    kwargs: dict[str, int] = {}
    if reduced_side is not None:
        height, width = simplejpeg.decode_jpeg_header(data)[:2]
        side = reduced_side(width, height)
        if side is not None:
            short = min(width, height)
            kwargs = dict(min_height=math.ceil(height * side / short), min_width=math.ceil(width * side / short),
                          min_factor=2)
    return simplejpeg.decode_jpeg(data, colorspace="RGB", **kwargs)


class VideoFileDataset(ClipDataset):
    """Videos stored as files (mp4, webm, ...) under ``root/video_dir/``, decoded with PyAV; only the
    sampled frames are decoded (:class:`~tinlab.data.video.VideoReader`). The frame count comes from
    the file; a count given in the list is checked (the file must have at least that many frames).
    Sampling, transforms and items are those of frame folders (:class:`ClipDataset`).

    Example (reads files)::

        ds = VideoFileDataset("data/sthv2", "sthv2_val_list_videos.txt", num_segments=8, train=False,
                              transform=build_transforms(False, 224, flip=False), num_classes=174)
    """

    media = "file"

    def __init__(self, root: str | Path, list_file: str | Path, *, num_segments: int, train: bool,
                 transform: ClipTransform | None, num_classes: int | None = None, video_dir: str = "videos",
                 test_clips: int = 1, check_files: bool = False, seed: int = 0) -> None:
        super().__init__(root, list_file, num_segments=num_segments, train=train, transform=transform,
                         num_classes=num_classes, media_dir=video_dir, test_clips=test_clips,
                         check_files=check_files, seed=seed)

    def video_path(self, record: VideoRecord) -> Path:
        return self.media_root / record.path

    def _check(self, rec: VideoRecord) -> None:
        path = self.video_path(rec)
        try:
            regular = stat.S_ISREG(os.stat(path).st_mode)
        except OSError:
            regular = False
        if not regular:
            raise DataError(f"missing video {path} (not a regular file) listed at {rec.where}")

    def _read(self, index: int, rec: VideoRecord) -> tuple[int, dict[int, np.ndarray]]:
        self._inside(self.video_path(rec), rec)
        with VideoReader(self.video_path(rec), rec.where) as video:
            n = video.num_frames
            if rec.num_frames > n:
                raise DataError(f"video {video.path} has {n} frames, fewer than the {rec.num_frames} listed at "
                                f"{rec.where} (truncated file?)")
            width, height = video.size
            side = self._reduced_side(width, height)
            size = None if side is None else (round(width * side / min(width, height)),
                                              round(height * side / min(width, height)))
            return n, video.frames(np.unique(self.indices(index, n)), size=size)


def build_dataset(name: str, root: str | Path, *, split: str, num_segments: int, input_size: int,
                  seed: int = 0, test_clips: int = 1, test_crops: int = 1, scale_size: int | None = None,
                  check_files: bool = False, **overrides: Any) -> ClipDataset:
    """A dataset from a preset: ``split`` "train" (augmented) or "val"; ``overrides`` change preset
    fields. Frame folders or video files, as the list file says.

    Example (reads files)::

        val = build_dataset("synthetic-motion", "data/synthetic-motion", split="val",
                            num_segments=8, input_size=56)
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    preset = get_preset(name, **overrides)
    train = split == "train"
    transform = build_transforms(train, input_size, preset.flip, scale_size, test_crops=test_crops)
    list_file = preset.train_list if train else preset.val_list
    common = dict(num_segments=num_segments, train=train, transform=transform, num_classes=preset.num_classes,
                  test_clips=test_clips, check_files=check_files, seed=seed)
    if not Path(root).is_dir():
        raise DataError(f"dataset folder {root} does not exist")
    if lists_video_files(parse_list_file(Path(root) / list_file, preset.num_classes)):
        return VideoFileDataset(root, list_file, video_dir=preset.video_dir, **common)
    return VideoFrameDataset(root, list_file, template=preset.template, frame_dir=preset.frame_dir, **common)


def sampler_seed(seed: int) -> int:
    """The seed given to :class:`~torch.utils.data.DistributedSampler`, which draws epoch e's order from
    ``seed + e``: run seeds 0 and 1 would see the same orders one epoch apart. A seed spread over 2^62
    gives every (seed, epoch) its own order.

    Example:
        >>> sampler_seed(0) != sampler_seed(1) - 1
        True
    """
    return int(np.random.SeedSequence([seed, 0x5A3]).generate_state(2, np.uint64)[0] >> 2)


class ShardSampler(Sampler[int]):
    """Every index once, in order, dealt round-robin to ``world_size`` processes (sharded evaluation;
    unlike DistributedSampler, no padding, so no video counts twice).

    Example:
        >>> [list(ShardSampler(5, rank=r, world_size=2)) for r in (0, 1)]
        [[0, 2, 4], [1, 3]]
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_dataloader(dataset: Dataset, batch_size: int, train: bool, num_workers: int = 0, seed: int = 0,
                     pin_memory: bool | None = None, rank: int = 0, world_size: int = 1) -> DataLoader:
    """A loader whose batches depend only on (seed, epoch): when training, a
    :class:`~torch.utils.data.DistributedSampler` (also for one process: its permutation depends on
    seed and epoch alone, so a resumed run sees the same order) with ``drop_last``; otherwise every
    video in order, sharded with :class:`ShardSampler` under DDP. ``batch_size`` is the per-process
    batch. Under DDP, rank r takes every world_size-th video of the same permutation, so global step b
    covers the videos a single process with the whole batch sees at step b. Call :func:`set_epoch`
    before each epoch; workers are not persistent, so they see the dataset's epoch as set before
    ``iter(loader)``.

    Example::

        loader = build_dataloader(train_set, batch_size=16, train=True, num_workers=2, seed=0)
        for epoch in range(epochs):
            set_epoch(loader, epoch)
            for clips, labels in loader:  # clips uint8 (16, T, 3, H, W), labels (16,)
                x = normalize_clips(clips.to(device))  # float32, normalised: the model's input
    """
    if train:
        sampler: Sampler[int] | None = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                                          seed=sampler_seed(seed), drop_last=True)
    else:
        sampler = ShardSampler(len(dataset), rank, world_size) if world_size > 1 else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
                      num_workers=num_workers, drop_last=train,
                      generator=torch.Generator().manual_seed(seed), persistent_workers=False,
                      pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Select epoch ``epoch`` in the loader's sampler and dataset (whichever have ``set_epoch``)."""
    for part in (loader.sampler, loader.dataset):
        setter: Callable[[int], None] | None = getattr(part, "set_epoch", None)
        if setter is not None:
            setter(epoch)
