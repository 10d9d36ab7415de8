"""Generated video datasets in the Something-Something V1 on-disk layout, deterministic by seed.

``synthetic-motion`` is the temporal-sensitive analogue of Something-Something: its 12 classes form
6 time-reversed twin pairs (left/right, down/up, grow/shrink, clockwise/anticlockwise, fade in/out, and
"A flashes, then B moves" vs the reverse order, which needs long-range temporal modelling). The odd
class of a pair is rendered as the even class's video with its frame order reversed, from the same
random draws, so the (unordered) set of frames has the same distribution for both twins: a model
without temporal interaction (TSN) cannot beat chance between them.

``synthetic-appearance`` is the temporal-insensitive analogue of UCF101/Kinetics: class = shape x
colour of the main object, the motion is random and the same distribution for every class.

The **probes** (``probe-*``) each isolate one temporal ability; their videos have exactly as many frames
as the model samples (``min_frames = max_frames = T``), so "frame" below is a sampled frame. In every
probe a model that looks at frames one at a time (TSN) sees the same distribution of frames in every
class, so it is at chance; what it must compute is said per probe (:data:`PROBES`).

Layout written under ``root`` (see :func:`generate`)::

    frames/<video_id>/00001.jpg ...   1-indexed, "{:05d}.jpg" (format "frames", the default)
    videos/<video_id>.mp4 (.webm)     one file per video (format "mp4": H.264, "webm": VP9; 12 fps,
                                      a key frame every 12 frames, 4:4:4 chroma like the JPEGs,
                                      about the JPEGs' bytes)
    train.txt, val.txt                "<video_id> <num_frames> <label>" per line (video files:
                                      "<video_id>.mp4 <num_frames> <label>")
    classes.txt                       line i = name of label i
    twins.json                        list: twins[i] = label of the time-reversed twin of i, or null
    dataset.json                      parameters and provenance; written last: its presence = complete

Every video draws from its own ``numpy.random.default_rng`` seeded with (seed, dataset, split, index),
so a video does not depend on how many others are generated or on the number of worker processes.
"""
from __future__ import annotations

import argparse
import colorsys
import functools
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import UserError
from ..utils.io import current_umask

# Bump whenever the pixels or files written for given parameters change: a dataset on disk with
# another generator version is treated as generated with different parameters.
GENERATOR_VERSION = 1
FRAME_TEMPLATE = "{:05d}.jpg"
JPEG_QUALITY = 90
FORMATS = ("frames", "mp4", "webm")
VIDEO_FPS, VIDEO_GOP = 12, 12  # Something-Something V2's frame rate; key frames often enough to seek
# Quality: about the JPEGs' bytes per video (at 40 px: 27 / 26 kB vs 29 kB), where every decoded frame is
# still closest to its own original (at the CRFs of JPEG-like per-pixel error, 18 / 24, inter-frame
# prediction smears the frames' own noise and motion over their neighbours: 7% / 23% of frames decode
# closer to a neighbour, and TIN lost 18 points of top-1 on the ci profile).
VIDEO_CRF = {"mp4": 10, "webm": 8}
SPLITS = ("train", "val")

MOTION_CLASSES = (
    "moving_left_to_right", "moving_right_to_left",
    "moving_top_to_bottom", "moving_bottom_to_top",
    "growing", "shrinking",
    "rotating_clockwise", "rotating_anticlockwise",
    "fading_in", "fading_out",
    "flash_then_move", "move_then_flash",
)
SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": 0.0, "green": 1 / 3, "blue": 2 / 3}  # hue centres
APPEARANCE_CLASSES = tuple(f"{c}_{s}" for s in SHAPES for c in COLOURS)


class DatasetExistsError(UserError, FileExistsError):
    """``root`` holds something other than the dataset asked for (other parameters, or not ours)."""


class InvalidParamsError(UserError, ValueError):
    """Generation parameters out of range."""


@dataclass(frozen=True)
class SyntheticParams:
    """Everything that determines the bytes of a generated dataset (recorded in dataset.json)."""
    name: str
    seed: int = 0
    num_train: int = 384
    num_val: int = 144
    size: int = 64
    min_frames: int = 24
    max_frames: int = 64

    def validate(self) -> None:
        if self.name not in DATASETS:
            raise InvalidParamsError(f"unknown synthetic dataset {self.name!r}; "
                                     f"choose from {sorted(DATASETS)}")
        if self.num_train < 1 or self.num_val < 1:
            raise InvalidParamsError(f"num_train and num_val must be >= 1, "
                                     f"got {self.num_train}, {self.num_val}")
        if self.size < 16:
            raise InvalidParamsError(f"size must be >= 16 pixels, got {self.size}")
        if not 2 <= self.min_frames <= self.max_frames:
            raise InvalidParamsError(f"need 2 <= min_frames <= max_frames, "
                                     f"got {self.min_frames}, {self.max_frames}")
        if self.name.startswith("probe-"):
            n = self.min_frames
            if self.max_frames != n:
                raise InvalidParamsError(f"{self.name}: min_frames = max_frames = the frames a model samples "
                                         f"(each sampled frame one rendered frame), got {self.min_frames}, "
                                         f"{self.max_frames}")
            gap = int(self.name.rsplit("-", 1)[1]) if self.name.startswith("probe-order-") else 0
            if gap and n <= gap:
                raise InvalidParamsError(f"{self.name}: {n} frames cannot hold two events {gap} frames apart")
            if self.name == "probe-counting" and not (n % 2 == 0 and max(COUNT_CHANGES) < n <= 16):
                raise InvalidParamsError(f"probe-counting: frames must be even, in [8, 16] ({max(COUNT_CHANGES)} "
                                         f"changes and half the frames of each colour), got {n}")


# ----------------------------------------------------------------------------------------------------
# Rendering. Everything is vectorised over the T frames of a clip: per-frame object parameters are
# arrays of length T and a frame is background + soft-edged objects + fresh pixel noise.

@dataclass
class _Object:
    shape: str
    cx: np.ndarray      # (T,) centre, pixels
    cy: np.ndarray
    r: np.ndarray       # (T,) size, pixels (radius of the circle of equal area)
    theta: np.ndarray   # (T,) orientation, radians, clockwise on screen (y points down)
    colour: np.ndarray  # (T, 3) or (3,) RGB in [0, 1]
    alpha: np.ndarray   # (T,) opacity


def _signed_distance(shape: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Approximate signed distance (pixels, > 0 inside) in the object's frame; sizes give equal areas."""
    if shape == "circle":
        return r - np.hypot(u, v)
    if shape == "cross":
        arm, half = 1.15 * r, 0.42 * r
        return np.maximum(np.minimum(arm - abs(u), half - abs(v)), np.minimum(half - abs(u), arm - abs(v)))
    sides = {"square": 4, "triangle": 3}[shape]
    apothem = r * np.sqrt(np.pi / (sides * np.tan(np.pi / sides)))  # regular polygon with area pi r^2
    phases = 2 * np.pi * np.arange(sides) / sides
    proj = np.stack([u * np.cos(p) + v * np.sin(p) for p in phases])  # edge normals: one vertex on -u
    return apothem - proj.max(axis=0)


def _composite(canvas: np.ndarray, obj: _Object) -> None:
    """Blend ``obj`` into canvas (T, H, W, 3) in place; a marker dot makes rotations visible."""
    # Only the box the object covers over the clip (every shape lies within 1.6 r of its centre);
    # outside it the mask is exactly 0, so this is a pure speed-up.
    reach = 1.6 * obj.r.max() + 1
    size = canvas.shape[1]
    box = lambda c: (int(np.clip(np.floor(c.min() - reach), 0, size)),
                     int(np.clip(np.ceil(c.max() + reach), 0, size)))
    (x0, x1), (y0, y1) = box(obj.cx), box(obj.cy)
    canvas = canvas[:, y0:y1, x0:x1]
    xs = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    cx, cy, r, th = (a[:, None, None] for a in (obj.cx, obj.cy, obj.r, obj.theta))
    dx, dy = xs[None, None, x0:x1] - cx, xs[None, y0:y1, None] - cy
    cos, sin = np.cos(th), np.sin(th)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    alpha = obj.alpha[:, None, None, None]
    colour = np.broadcast_to(obj.colour, (len(obj.cx), 3))[:, None, None, :]
    mask = np.clip(_signed_distance(obj.shape, u, v, r) + 0.5, 0, 1)[..., None] * alpha
    canvas += mask * (colour - canvas)
    dot = np.clip(0.25 * r - np.hypot(u - 0.55 * r, v) + 0.5, 0, 1)[..., None] * alpha
    canvas += dot * (0.25 * colour - canvas)


def _colour(rng: np.random.Generator, hue: float | None = None, jitter: float = 0.0) -> np.ndarray:
    h = rng.uniform() if hue is None else (hue + rng.uniform(-jitter, jitter)) % 1.0
    return np.array(colorsys.hsv_to_rgb(h, rng.uniform(0.65, 1.0), rng.uniform(0.75, 1.0)), np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Static textured background: smooth random blobs plus fine grain, muted so objects stand out."""
    k = int(rng.integers(3, 7))
    coarse = Image.fromarray((rng.uniform(size=(k, k, 3)) * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255
    smooth = 0.6 * smooth.mean(axis=2, keepdims=True) + 0.4 * smooth  # mostly grey, some colour
    grain = rng.normal(0, 0.04, size=(size, size, 1)).astype(np.float32)
    return 0.15 + 0.45 * smooth + grain


def _ramp(rng: np.random.Generator, t: np.ndarray, start: tuple[float, float], end: tuple[float, float]
          ) -> np.ndarray:
    """Progress 0 -> 1 over a random window [s, e] of normalised time t in [0, 1], flat outside."""
    s, e = rng.uniform(*start), rng.uniform(*end)
    return np.clip((t - s) / (e - s), 0, 1).astype(np.float32)


def _random_walk(rng: np.random.Generator, n: int, lo: float, hi: float, step: float) -> np.ndarray:
    """Gaussian random walk reflected into [lo, hi], started uniformly: its time reversal has the same
    distribution, so a distractor never tells twins apart."""
    x = rng.uniform(lo, hi) + np.concatenate([[0.0], np.cumsum(rng.normal(0, step, n - 1))])
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return (lo + span - np.abs(y - span)).astype(np.float32)


def _distractor(rng: np.random.Generator, n: int, size: int, grey: bool = False) -> _Object:
    r = size * rng.uniform(0.05, 0.07)
    colour = np.full(3, rng.uniform(0.6, 1.0), np.float32) if grey else _colour(rng)
    return _Object(str(rng.choice(SHAPES)), _random_walk(rng, n, r, size - r, 0.03 * size),
                   _random_walk(rng, n, r, size - r, 0.03 * size), np.full(n, r, np.float32),
                   np.full(n, rng.uniform(0, 2 * np.pi), np.float32), colour, np.ones(n, np.float32))


def _const(n: int, value: float) -> np.ndarray:
    return np.full(n, value, np.float32)


def _motion_objects(pair: int, rng: np.random.Generator, n: int, size: int) -> list[_Object]:
    """Main object(s) of the FORWARD (even) class of twin pair ``pair`` for an n-frame clip."""
    t = np.linspace(0, 1, n, dtype=np.float32)
    shape, colour = str(rng.choice(SHAPES)), _colour(rng)
    r = size * rng.uniform(0.1, 0.15)
    theta = _const(n, rng.uniform(0, 2 * np.pi))
    ones = np.ones(n, np.float32)
    x, y = rng.uniform(r, size - r), rng.uniform(r, size - r)

    def moving(axis: int) -> _Object:
        # Travel 35-60% of the frame along the axis during a window covering most of the clip.
        dist = size * rng.uniform(0.35, 0.6)
        a0 = rng.uniform(r, max(r, size - r - dist))
        p = a0 + dist * _ramp(rng, t, (0.0, 0.2), (0.8, 1.0))
        other = _const(n, y if axis == 0 else x)
        return _Object(shape, p, other, _const(n, r), theta, colour, ones) if axis == 0 else \
            _Object(shape, other, p, _const(n, r), theta, colour, ones)

    if pair in (0, 1):
        return [moving(pair)]
    if pair == 2:  # grow from r0 to 2-2.8 x r0 at a fixed place that fits the final size
        r0 = size * rng.uniform(0.06, 0.09)
        r1 = r0 * rng.uniform(2.0, 2.8)
        cx, cy = rng.uniform(r1, size - r1), rng.uniform(r1, size - r1)
        radius = r0 + (r1 - r0) * _ramp(rng, t, (0.0, 0.2), (0.8, 1.0))
        return [_Object(shape, _const(n, cx), _const(n, cy), radius, theta, colour, ones)]
    if pair == 3:  # turn clockwise by 135-270 degrees
        turn = rng.uniform(0.75, 1.5) * np.pi * _ramp(rng, t, (0.0, 0.2), (0.8, 1.0))
        return [_Object(shape, _const(n, x), _const(n, y), _const(n, r), theta + turn, colour, ones)]
    if pair == 4:  # fade in
        alpha = _ramp(rng, t, (0.05, 0.3), (0.7, 0.95))
        return [_Object(shape, _const(n, x), _const(n, y), _const(n, r), theta, colour, alpha)]
    if pair == 5:
        # A flashes (turns white and swells) early in the clip, later B moves in a random direction.
        # Each event alone is time-symmetric in distribution; only their ORDER tells the twins apart.
        side = rng.permutation([0.25, 0.75])
        ax, bx = side * size
        ay, by = rng.uniform(r, size - r, 2)
        flash = np.sin(np.pi * _ramp(rng, t, (0.05, 0.15), (0.35, 0.45))) ** 2
        a_colour = colour + flash[:, None] * (0.95 - colour)
        a = _Object(shape, _const(n, ax), _const(n, ay), r * (1 + 0.3 * flash), theta, a_colour, ones)
        angle, dist = rng.uniform(0, 2 * np.pi), size * rng.uniform(0.2, 0.3)
        move = dist * _ramp(rng, t, (0.55, 0.65), (0.85, 0.95))
        b_shape, b_colour = str(rng.choice(SHAPES)), _colour(rng)
        bx_t = np.clip(bx + np.cos(angle) * move, r, size - r)
        by_t = np.clip(by + np.sin(angle) * move, r, size - r)
        b = _Object(b_shape, bx_t, by_t, _const(n, r), _const(n, rng.uniform(0, 2 * np.pi)), b_colour, ones)
        return [a, b]
    raise ValueError(f"no twin pair {pair}")


def _appearance_objects(label: int, rng: np.random.Generator, n: int, size: int) -> list[_Object]:
    shape, hue = SHAPES[label // len(COLOURS)], list(COLOURS.values())[label % len(COLOURS)]
    r = size * rng.uniform(0.12, 0.17)
    # Bouncing straight-line motion and a random spin: the same distribution for every class.
    x = rng.uniform(r, size - r) + np.arange(n) * size * rng.uniform(-0.025, 0.025)
    y = rng.uniform(r, size - r) + np.arange(n) * size * rng.uniform(-0.025, 0.025)
    span = size - 2 * r
    bounce = lambda p: (r + span - np.abs(np.mod(p - r, 2 * span) - span)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi) + np.arange(n, dtype=np.float32) * rng.uniform(-0.15, 0.15)
    return [_Object(shape, bounce(x), bounce(y), _const(n, r), theta.astype(np.float32),
                    _colour(rng, hue, jitter=0.04), np.ones(n, np.float32))]


# ----------------------------------------------------------------------------------------------------
# Probes: one temporal ability each.

SPEEDS = (1, 2, 3, 4)  # displacement per frame, in twentieths of the frame width
COUNT_CHANGES = (1, 3, 5, 7)  # colour changes over the clip
ORDER_GAPS = (1, 2, 4, 6)  # frames between the two events of probe-order-<g>

PROBES: dict[str, str] = {
    "direction": "synthetic-motion: which way a motion runs (time-reversed twins, 12 classes, chance 1/12, "
                 "1/2 between twins): the order of frames, anywhere in the clip",
    "speed": "probe-speed: how far an object moves between consecutive frames (4 speeds, random direction, "
             "wrapping around the frame so that every frame's position is uniform: chance 1/4): two adjacent "
             "frames compared",
    **{f"order-{g}": f"probe-order-{g}: whether the red circle or the blue square flashes first, the flashes {g} "
                     f"frame{'s' * (g > 1)} apart (time-reversed twins: the same frames in either order, chance "
                     f"1/2): two frames {g} apart related" for g in ORDER_GAPS},
    "counting": "probe-counting: how many times the object changes colour (1, 3, 5 or 7 times over 8 frames, "
                "always 4 frames of each colour, the first colour random: chance 1/4): adjacent frames compared, "
                "and the changes summed over the clip",
    "appearance": "synthetic-appearance: what the object looks like (12 classes, chance 1/12): no temporal "
                  "ability needed (the control)",
}


def _toroidal(canvas: np.ndarray, obj: _Object, size: int) -> None:
    """Composite ``obj`` on a torus: every copy shifted by a multiple of the frame size that can show."""
    for dx in (-size, 0, size):
        for dy in (-size, 0, size):
            _composite(canvas, _Object(obj.shape, obj.cx + dx, obj.cy + dy, obj.r, obj.theta, obj.colour, obj.alpha))


def speed_positions(label: int, rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y) per frame of probe-speed's object: a uniform start on the torus [0, size)^2, then
    SPEEDS[label] * size / 20 pixels per frame in a uniformly random direction, wrapped."""
    step = SPEEDS[label] * size / 20
    angle = rng.uniform(0, 2 * np.pi)
    t = np.arange(n, dtype=np.float64)
    cx = np.mod(rng.uniform(0, size) + step * np.cos(angle) * t, size).astype(np.float32)
    cy = np.mod(rng.uniform(0, size) + step * np.sin(angle) * t, size).astype(np.float32)
    return cx, cy


def _speed_frames(label: int, rng: np.random.Generator, n: int, size: int, canvas: np.ndarray) -> None:
    """An object crossing the frame at speed SPEEDS[label] in a uniformly random direction, wrapping
    around: the start is uniform on the torus, so the position in any one frame is uniform whatever the
    speed (a single frame says nothing about the class)."""
    cx, cy = speed_positions(label, rng, n, size)
    r = size * rng.uniform(0.08, 0.11)
    _toroidal(canvas, _Object(str(rng.choice(SHAPES)), cx, cy, _const(n, r), _const(n, rng.uniform(0, 2 * np.pi)),
                              _colour(rng), np.ones(n, np.float32)), size)


def _order_frames(gap: int, rng: np.random.Generator, n: int, size: int, canvas: np.ndarray) -> None:
    """Class 0 (``circle_then_square``): a red circle and a blue square on random sides; the circle flashes
    (swollen, paler) in one frame a, the square in frame a + gap, a uniform in [0, n - 1 - gap]. Class 1 is class
    0's frames reversed (render_video), so the two classes hold the same frames."""
    r = size * rng.uniform(0.1, 0.13)
    a = int(rng.integers(0, n - gap))
    flash_a, flash_b = np.zeros(n, np.float32), np.zeros(n, np.float32)
    flash_a[a], flash_b[a + gap] = 1.0, 1.0
    left, right = rng.permutation([0.28, 0.72]) * size
    # Told apart by colour as well as shape (red circle, blue square: the small networks here tell colours
    # apart far better than shapes); a flash swells the object and pales it halfway to white.
    for shape, x, flash, hue in (("circle", left, flash_a, COLOURS["red"]), ("square", right, flash_b, COLOURS["blue"])):
        colour = _colour(rng, hue, jitter=0.04)
        shown = colour + 0.5 * flash[:, None] * (0.97 - colour)
        _composite(canvas, _Object(shape, _const(n, x), _const(n, rng.uniform(r, size - r)), r * (1 + 0.35 * flash),
                                   _const(n, rng.uniform(0, 2 * np.pi)), shown, np.ones(n, np.float32)))


@functools.lru_cache(maxsize=None)
def change_sequences(n: int, changes: int) -> tuple[tuple[int, ...], ...]:
    """Every 0/1 sequence of length n that starts with 0, has exactly ``changes`` changes and n/2 of each
    value (n even): the colour patterns of one class of probe-counting."""
    out = []
    for code in range(2 ** (n - 1)):
        seq = (0,) + tuple((code >> i) & 1 for i in range(n - 1))
        if sum(seq) == n // 2 and sum(a != b for a, b in zip(seq, seq[1:])) == changes:
            out.append(seq)
    return tuple(out)


def counting_pattern(label: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """Which of the two colours each frame of a probe-counting clip shows (0/1, length n): one of the
    patterns with COUNT_CHANGES[label] changes, uniformly, its colours swapped with probability 1/2."""
    patterns = change_sequences(n, COUNT_CHANGES[label])
    return np.array(patterns[int(rng.integers(len(patterns)))]) ^ int(rng.integers(2))


def _counting_frames(label: int, rng: np.random.Generator, n: int, size: int, canvas: np.ndarray) -> None:
    """An object whose colour changes COUNT_CHANGES[label] times: a pattern drawn uniformly among those with
    that many changes and n/2 frames of each colour, the first colour random (so every frame is either
    colour with probability 1/2 in every class, and every clip holds n/2 frames of each)."""
    pattern = counting_pattern(label, rng, n)
    hue = rng.uniform()
    colours = np.stack([_colour(rng, hue, 0.02), _colour(rng, (hue + 0.5) % 1.0, 0.02)])
    r = size * rng.uniform(0.12, 0.16)
    x, y = rng.uniform(r, size - r, 2)
    _composite(canvas, _Object(str(rng.choice(SHAPES)), _const(n, x), _const(n, y), _const(n, r),
                               _const(n, rng.uniform(0, 2 * np.pi)), colours[pattern], np.ones(n, np.float32)))


def render_video(name: str, label: int, rng: np.random.Generator, num_frames: int, size: int) -> np.ndarray:
    """Render one clip of class ``label`` as uint8 frames (T, size, size, 3).

    In ``synthetic-motion`` the odd class of a twin pair consumes exactly the random draws of the even
    class and returns its frames reversed.

    Example:
        >>> a = render_video("synthetic-motion", 0, np.random.default_rng(1), 12, 32)
        >>> b = render_video("synthetic-motion", 1, np.random.default_rng(1), 12, 32)
        >>> bool((a[::-1] == b).all()), a.shape
        (True, (12, 32, 32, 3))
    """
    spec = DATASETS[name]
    if not 0 <= label < len(spec.classes):
        raise ValueError(f"label {label} outside [0, {len(spec.classes)}) for {name}")
    canvas = np.repeat(_background(rng, size)[None], num_frames, axis=0)
    objects = []
    if name == "probe-speed":
        _speed_frames(label, rng, num_frames, size, canvas)
    elif name.startswith("probe-order-"):
        _order_frames(int(name.rsplit("-", 1)[1]), rng, num_frames, size, canvas)
    elif name == "probe-counting":
        _counting_frames(label, rng, num_frames, size, canvas)
    if name.startswith("probe-"):
        objects.append(_distractor(rng, num_frames, size))  # a reversible random walk, as in synthetic-motion
    elif spec.twins[label] is not None:
        objects = _motion_objects(label // 2, rng, num_frames, size)
        objects.append(_distractor(rng, num_frames, size))
    else:
        objects = _appearance_objects(label, rng, num_frames, size)
        objects.append(_distractor(rng, num_frames, size, grey=True))
    for obj in objects:
        _composite(canvas, obj)
    canvas += rng.uniform(0.01, 0.03) * rng.standard_normal(canvas.shape, dtype=np.float32)
    frames = np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8)
    reverse = spec.twins[label] is not None and label % 2 == 1
    return np.ascontiguousarray(frames[::-1]) if reverse else frames


@dataclass(frozen=True)
class _Spec:
    classes: tuple[str, ...]
    twins: tuple[int | None, ...]
    index: int  # part of every seed, so the two datasets never share videos


DATASETS: dict[str, _Spec] = {
    "synthetic-motion": _Spec(MOTION_CLASSES, tuple(i ^ 1 for i in range(len(MOTION_CLASSES))), 0),
    "synthetic-appearance": _Spec(APPEARANCE_CLASSES, (None,) * len(APPEARANCE_CLASSES), 1),
    "probe-speed": _Spec(tuple(f"speed_{v}" for v in SPEEDS), (None,) * len(SPEEDS), 2),
    **{f"probe-order-{g}": _Spec(("circle_then_square", "square_then_circle"), (1, 0), 10 + g) for g in ORDER_GAPS},
    "probe-counting": _Spec(tuple(f"{k}_changes" for k in COUNT_CHANGES), (None,) * len(COUNT_CHANGES), 3),
}
# probe -> its dataset (direction and appearance are Table 1's and Table 2's data)
PROBE_DATASETS = {"direction": "synthetic-motion", "speed": "probe-speed",
                  **{f"order-{g}": f"probe-order-{g}" for g in ORDER_GAPS}, "counting": "probe-counting",
                  "appearance": "synthetic-appearance"}


# ----------------------------------------------------------------------------------------------------
# Writing a dataset.

def split_labels(p: SyntheticParams, split: str) -> np.ndarray:
    """Labels of the videos of ``split``: balanced (class counts differ by at most one), shuffled."""
    spec, s = DATASETS[p.name], SPLITS.index(split)
    labels = np.arange(p.num_train if s == 0 else p.num_val) % len(spec.classes)
    return np.random.default_rng([p.seed, spec.index, s, 0]).permutation(labels)


def dataset_video(p: SyntheticParams, split: str, index: int) -> tuple[str, int, np.ndarray]:
    """(video id, label, uint8 frames (T, H, W, 3)) of video ``index`` of ``split``, as generate writes it.

    Example:
        >>> vid, label, frames = dataset_video(SyntheticParams("synthetic-motion"), "val", 0)
        >>> vid, frames.shape[1:]
        ('val00000', (64, 64, 3))
    """
    label = int(split_labels(p, split)[index])
    rng = np.random.default_rng([p.seed, DATASETS[p.name].index, SPLITS.index(split), 1, index])
    num_frames = int(rng.integers(p.min_frames, p.max_frames + 1))
    return f"{split}{index:05d}", label, render_video(p.name, label, rng, num_frames, p.size)


def _write_video(job: tuple[SyntheticParams, str, int, str, str]) -> tuple[str, int, int]:
    p, split, index, out_dir, fmt = job
    video_id, label, frames = dataset_video(p, split, index)
    if fmt != "frames":
        from .video import write_video

        name = f"{video_id}.{fmt}"
        # 4:4:4 chroma for the reason given below for the JPEGs.
        write_video(Path(out_dir) / name, frames, fps=VIDEO_FPS, gop=VIDEO_GOP, quality=VIDEO_CRF[fmt],
                    pix_fmt="yuv444p")
        return name, len(frames), label
    out = Path(out_dir) / video_id
    out.mkdir(parents=True)
    for i, frame in enumerate(frames, start=1):
        # 4:4:4 chroma: 4:2:0 would smear the colour of small objects, which is the class in
        # synthetic-appearance.
        Image.fromarray(frame).save(out / FRAME_TEMPLATE.format(i), "JPEG", quality=JPEG_QUALITY,
                                    subsampling=0)
    return video_id, len(frames), label


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / "dataset.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise DatasetExistsError(f"{root / 'dataset.json'} is unreadable ({e}); pass overwrite=True "
                                 f"(--overwrite) to regenerate") from e


def _check_existing(root: Path, wanted: dict[str, Any]) -> bool:
    """True if ``root`` already is the wanted dataset; False if it is free (missing or an empty folder)."""
    if not root.exists():
        return False
    manifest = _read_manifest(root)
    if manifest is None:
        if root.is_dir() and not any(root.iterdir()):
            return False
        raise DatasetExistsError(f"{root} exists but is not a complete generated dataset (no dataset.json);"
                                 f" pass overwrite=True (--overwrite) to replace it")
    have = {**manifest.get("params", {}), "generator_version": manifest.get("generator_version"),
            "format": manifest.get("format", "frames")}
    diff = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
    if diff:
        lines = ", ".join(f"{k}: on disk {a!r}, requested {b!r}" for k, (a, b) in diff.items())
        raise DatasetExistsError(f"{root} holds a dataset generated with other parameters ({lines}); "
                                 f"pass overwrite=True (--overwrite) to regenerate, or use another root")
    return True


def _manifest(p: SyntheticParams, counts: dict[str, tuple[int, int]], fmt: str) -> dict[str, Any]:
    from tinlab import __version__
    spec = DATASETS[p.name]
    media = ({"layout": "something-v1", "frame_dir": "frames", "frame_template": FRAME_TEMPLATE,
              "jpeg_quality": JPEG_QUALITY} if fmt == "frames" else
             {"layout": "video files", "video_dir": "videos", "codec": {"mp4": "H.264", "webm": "VP9"}[fmt],
              "fps": VIDEO_FPS, "gop": VIDEO_GOP, "crf": VIDEO_CRF[fmt], "pix_fmt": "yuv444p"})
    return {
        "name": p.name, "params": asdict(p), "format": fmt, "generator_version": GENERATOR_VERSION,
        "tinlab_version": __version__, "generator": f"{__name__}.generate", **media,
        "num_classes": len(spec.classes),
        "splits": {s: {"list_file": f"{s}.txt", "videos": v, "frames": f} for s, (v, f) in counts.items()},
        "classes": list(spec.classes), "twins": list(spec.twins),
    }


def generate(name: str, root: str | Path, *, seed: int = 0, num_train: int = 384, num_val: int = 144,
             size: int = 64, min_frames: int = 24, max_frames: int = 64, overwrite: bool = False,
             workers: int = 1, format: str = "frames") -> Path:
    """Generate dataset ``name`` into ``root`` (atomically) and return ``root``; ``format`` "frames"
    (JPEG folders), "mp4" (H.264) or "webm" (VP9) files, the same pixels before compression.

    Idempotent: if ``root`` is already this dataset (same parameters and generator version) it returns
    at once. It raises :class:`DatasetExistsError` if ``root`` holds anything else, unless
    ``overwrite``. Files are written into a temporary sibling folder that is renamed to ``root`` only
    when complete (``dataset.json`` last), so a killed run leaves at most a ``.<name>.tmp-*`` sibling.
    ``workers`` > 1 renders videos in parallel processes; the output does not depend on it.

    Example (writes files)::

        root = generate("synthetic-motion", "data/synthetic-motion")  # ~15 s, 93 MB
        sorted(p.name for p in root.iterdir())
        # ['classes.txt', 'dataset.json', 'frames', 'train.txt', 'twins.json', 'val.txt']
    """
    p = SyntheticParams(name, seed, num_train, num_val, size, min_frames, max_frames)
    p.validate()
    if format not in FORMATS:
        raise InvalidParamsError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    root = Path(root)
    wanted = {**asdict(p), "generator_version": GENERATOR_VERSION, "format": format}
    if not overwrite and _check_existing(root, wanted):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it private (0700); the dataset should not be
        out_dir = tmp / ("frames" if format == "frames" else "videos")
        out_dir.mkdir()
        jobs = [(p, split, i, str(out_dir), format)
                for split, count in zip(SPLITS, (num_train, num_val)) for i in range(count)]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                rows = list(pool.map(_write_video, jobs, chunksize=8))
        else:
            rows = [_write_video(job) for job in jobs]
        counts = {}
        for split in SPLITS:
            split_rows = [r for r, job in zip(rows, jobs) if job[1] == split]
            (tmp / f"{split}.txt").write_text("".join(f"{v} {n} {lab}\n" for v, n, lab in split_rows))
            counts[split] = (len(split_rows), sum(n for _, n, _ in split_rows))
        spec = DATASETS[name]
        (tmp / "classes.txt").write_text("".join(c + "\n" for c in spec.classes))
        (tmp / "twins.json").write_text(json.dumps(list(spec.twins)) + "\n")
        # Last, in the private folder that becomes root in one rename: no reader sees a partial dataset.
        (tmp / "dataset.json").write_text(json.dumps(_manifest(p, counts, format), indent=2) + "\n")
        _install(tmp, root, wanted, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return root


def _install(tmp: Path, root: Path, wanted: dict[str, Any], overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``root``, moving any old ``root`` aside first if overwriting."""
    old = None
    if root.exists() and (overwrite or not any(root.iterdir())):
        old = root.with_name(f".{root.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.rename(root, old)
    try:
        os.rename(tmp, root)
    except OSError:
        # Another process installed the same root meanwhile: fine if it is what we wanted.
        if old is None and _check_existing(root, wanted):
            return
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------
# CLI: ``python -m tinlab generate synthetic-motion --root data/synthetic-motion``.

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``generate`` sub-command's arguments to ``parser``.

    Example:
        >>> parser = argparse.ArgumentParser(); add_arguments(parser)
        >>> parser.parse_args(["synthetic-motion", "--num-train", "8"]).num_train
        8
    """
    d = SyntheticParams("synthetic-motion")
    parser.add_argument("name", choices=sorted(DATASETS), help="which generated dataset")
    parser.add_argument("--root", type=Path, default=None, help="output folder (default: data/NAME)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--num-train", type=int, default=d.num_train, help="training videos")
    parser.add_argument("--num-val", type=int, default=d.num_val, help="validation videos")
    parser.add_argument("--size", type=int, default=d.size, help="frame height = width, pixels")
    parser.add_argument("--min-frames", type=int, default=d.min_frames)
    parser.add_argument("--max-frames", type=int, default=d.max_frames)
    parser.add_argument("--format", choices=FORMATS, default="frames",
                        help="JPEG frame folders, or one H.264 (mp4) / VP9 (webm) file per video")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="rendering processes (does not change the output)")
    parser.add_argument("--overwrite", action="store_true", help="replace ROOT if it holds anything else")


def run(args: argparse.Namespace) -> int:
    """Run the ``generate`` sub-command; returns the process exit code (0 ok, 2 refused)."""
    root = args.root if args.root is not None else Path("data") / args.name
    params = SyntheticParams(args.name, args.seed, args.num_train, args.num_val, args.size,
                             args.min_frames, args.max_frames)
    start = time.perf_counter()
    generate(**asdict(params), root=root, overwrite=args.overwrite, workers=args.workers, format=args.format)
    manifest = json.loads((root / "dataset.json").read_text())
    splits = ", ".join(f"{s} {v['videos']} videos / {v['frames']} frames"
                       for s, v in manifest["splits"].items())
    print(f"{args.name} ready at {root} ({manifest['num_classes']} classes; {splits}; "
          f"{time.perf_counter() - start:.1f} s)")
    return 0
