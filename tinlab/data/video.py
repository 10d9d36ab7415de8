"""Video files (mp4/H.264, webm/VP9, and whatever else FFmpeg reads), decoded with PyAV.

The decoder is PyAV (``pip install av``; its wheels ship FFmpeg with the H.264, HEVC, VP8/9 and AV1
decoders, so nothing is needed from the system). torchcodec, PyTorch's own decoder, needs FFmpeg's
shared libraries installed on the system, and decord has been unmaintained since 2021.

A clip needs T frames spread over the whole video (TSN sampling), so :class:`VideoReader` reads the
container's packet index first (demuxing only: timestamps and key-frame flags, no decoding), which gives
the exact frame count and where each key frame is, then decodes only what the wanted frames need: it
seeks to the key frame at or before a wanted frame whenever that key frame lies past the frame it
last decoded, and otherwise decodes forward. Frames are numbered in presentation order (frame i is
the video's i-th picture), which equals the time order of a constant-frame-rate video and stays
exact for variable frame rates and B-frames. Only the wanted frames are kept, as uint8 RGB arrays;
the video is never held in memory.

Example (reads a file)::

    with VideoReader("data/sthv2/videos/1.webm") as video:
        n = video.num_frames
        frames = video.frames([0, n // 2, n - 1])  # {index: uint8 (H, W, 3)}
"""
from __future__ import annotations

import bisect
import os
import stat
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")

__all__ = ["VIDEO_EXTENSIONS", "VideoReader", "is_video_path", "write_video"]


def is_video_path(path: str) -> bool:
    """Whether a list entry names a video file (by its extension) rather than a frame folder.

    Example:
        >>> is_video_path("abseiling/0wR5jVB-WPk_000417_000427.mp4"), is_video_path("12345")
        (True, False)
    """
    return path.lower().endswith(VIDEO_EXTENSIONS)


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency; a broken install lands here
        raise DataError(f"reading video files needs PyAV (pip install av): {e}") from None
    return av


def _message(e: BaseException) -> str:
    return " ".join(str(e).split())


class VideoReader:
    """The frames of one video file; ``where`` (e.g. ``train.txt:12``) goes into every error message.

    ``threads`` is the decoder's thread count: 1 (the default) in data-loader workers, which already
    run in parallel.
    """

    def __init__(self, path: str | Path, where: str = "", threads: int = 1) -> None:
        self.path, self.where, self.threads = Path(path), where, threads
        self._container = None
        self._pts: list[int] | None = None
        self._keys: list[int] = []

    # -- opening and indexing -----------------------------------------------------------------------

    def _listed(self) -> str:
        return f" (listed at {self.where})" if self.where else ""

    def _error(self, what: str, e: BaseException | None = None) -> DataError:
        detail = f": {_message(e)}" if e is not None else ""
        return DataError(f"{what} {self.path}{self._listed()}{detail}")

    def _open(self):
        if self._container is not None:
            return self._container
        av = _av()
        try:
            # stat first: opening a FIFO or a device in place of a video would block or read forever
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                raise self._error("missing video (not a regular file):")
        except FileNotFoundError:
            raise self._error("missing video") from None
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as e:
            raise self._error("corrupt or unreadable video", e) from None
        if not container.streams.video:
            container.close()
            raise self._error("no video stream in")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = self.threads
        self._container, self._stream = container, stream
        return container

    def _index(self) -> list[int]:
        """Presentation timestamps of every frame, in order, and the key frames' indices (demux only)."""
        if self._pts is not None:
            return self._pts
        av = _av()
        container = self._open()
        stamps, keys = [], []
        try:
            for packet in container.demux(self._stream):
                if packet.size == 0:  # the end-of-stream marker
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    raise self._error("a packet without timestamps in")
                stamps.append(ts)
                if packet.is_keyframe:
                    keys.append(ts)
        except av.error.FFmpegError as e:
            raise self._error("corrupt or unreadable video", e) from None
        if not stamps:
            raise self._error("no frames in video")
        pts = sorted(stamps)
        self._pts = pts
        self._frame_of = {ts: i for i, ts in enumerate(pts)}
        self._keys = sorted(self._frame_of[ts] for ts in set(keys))
        if not self._keys or self._keys[0] != 0:
            self._keys.insert(0, 0)  # decoding starts at the first packet in any case
        return pts

    @property
    def num_frames(self) -> int:
        """Exact number of frames (packets in the video stream; read without decoding)."""
        return len(self._index())

    @property
    def key_frames(self) -> list[int]:
        """Indices of the key frames (where decoding can start after a seek)."""
        self._index()
        return list(self._keys)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        self._open()
        return self._stream.codec_context.width, self._stream.codec_context.height

    # -- decoding -----------------------------------------------------------------------------------

    def frames(self, indices: Iterable[int], size: tuple[int, int] | None = None) -> dict[int, np.ndarray]:
        """Decode the frames ``indices`` (0-based, any order, repeats allowed) -> {index: uint8 (H, W, 3)
        RGB}; ``size`` = (width, height) scales them while converting from YUV (one pass, no extra copy).

        Raises :class:`~tinlab.errors.DataError` naming the file (and list line) for an index past the
        last frame, a corrupt stream, or a file that ends before its index says it should.
        """
        av = _av()
        pts = self._index()
        wanted = sorted(set(int(i) for i in indices))
        if wanted and (wanted[0] < 0 or wanted[-1] >= len(pts)):
            bad = wanted[0] if wanted[0] < 0 else wanted[-1]
            raise self._error(f"frame {bad} requested from a video of {len(pts)} frames:")
        container, stream = self._container, self._stream
        kwargs = {"format": "rgb24"} if size is None else {"format": "rgb24", "width": size[0], "height": size[1]}
        want = set(wanted)
        out: dict[int, np.ndarray] = {}
        decoded = None  # iterator over decoded frames, and the index of the last frame it gave
        last = -1
        try:
            for target in wanted:
                if target in out:
                    continue
                key = self._keys[bisect.bisect_right(self._keys, target) - 1]
                # seek when a key frame lies past what is decoded (skip the gap), or to go back
                if decoded is None or key > last + 1 or target <= last:
                    container.seek(pts[key], stream=stream, backward=True, any_frame=False)
                    decoded = container.decode(stream)
                for frame in decoded:
                    index = self._frame_of.get(frame.pts)
                    if index is None:
                        continue  # a frame the packet index does not know (should not happen); skip it
                    last = index
                    if index in want and index not in out:
                        out[index] = frame.to_ndarray(**kwargs)
                    if index >= target:
                        break
                else:
                    raise self._error(f"decoding stopped before frame {target} of {len(pts)} (truncated?) in")
        except av.error.FFmpegError as e:
            raise self._error("corrupt or unreadable video", e) from None
        return out

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | Path, frames: np.ndarray, *, fps: int = 12, codec: str | None = None,
                gop: int = 12, quality: int | None = None, pix_fmt: str = "yuv420p") -> None:
    """Encode uint8 RGB frames (T, H, W, 3) into ``path`` (.mp4: H.264, .webm: VP9), ``gop`` frames
    between key frames; ``quality`` is the codec's CRF (lower is better; default 18 for H.264, 24 for
    VP9). H.264 needs even width and height for 4:2:0 (``pix_fmt="yuv444p"`` keeps full chroma).

    Example (writes a file)::

        write_video("clip.mp4", np.zeros((16, 64, 64, 3), np.uint8))
    """
    av = _av()
    path = Path(path)
    ext = path.suffix.lower()
    if codec is None:
        codec = {".mp4": "libx264", ".m4v": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}.get(ext)
        if codec is None:
            raise ValueError(f"no default codec for {path.name}: pass codec=")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if codec == "libvpx-vp9":
        options = {"crf": str(24 if quality is None else quality), "b": "0", "deadline": "good",
                   "cpu-used": "4", "row-mt": "0"}
    elif codec == "libx264":
        options = {"crf": str(18 if quality is None else quality), "preset": "medium"}
    else:
        options = {}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.gop_size = gop
        stream.codec_context.thread_count = 1  # deterministic output
        stream.options = options
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
