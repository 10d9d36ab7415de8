"""Clip transforms: the same crop, scale and flip for every frame of a clip (TSN "Group*" transforms).

A transform is called as ``transform(frames, rng)`` where ``frames`` is a list of T PIL images or a
(T, C, H, W) tensor (uint8 in [0, 255] or float in [0, 1]) and ``rng`` a ``numpy.random.Generator``.
Randomness comes only from ``rng``: the dataset seeds it per (seed, epoch, video), so augmentation is
reproducible whatever the number of loader workers. The datasets pass uint8 tensors laid out
channels-last (the decoders' layout, no copy), which every step handles without leaving uint8: crops
are views, resizing runs PyTorch's uint8 antialiased bilinear kernel (within one grey level of PIL's,
several times faster).

The last step is :class:`ToUint8` (the default of :func:`build_transforms`: a uint8 (T, 3, H, W) clip,
a quarter of float32's bytes through the loader and to the device, where :func:`normalize_clips`
converts and normalises it) or :class:`ToTensor` (float32, normalised in the worker). After
:class:`MultiCrop` every later step runs per view and the result is (views, T, 3, H, W).
"""
from __future__ import annotations

import functools

import math
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

Frames = Union[list[Image.Image], Tensor]
ClipTransform = Callable[[Frames, np.random.Generator], Union[Frames, "Views", Tensor]]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTI_SCALE_CROP_SCALES = (1.0, 0.875, 0.75, 0.66)  # TSN's GroupMultiScaleCrop


class Views(list):
    """Several views (crops) of one clip; :class:`Compose` maps later steps over them and stacks."""


def frame_size(frames: Frames) -> tuple[int, int]:
    """(width, height) of the frames."""
    return (frames.shape[-1], frames.shape[-2]) if isinstance(frames, Tensor) else frames[0].size


def crop(frames: Frames, left: int, top: int, width: int, height: int) -> Frames:
    if isinstance(frames, Tensor):
        return frames[..., top:top + height, left:left + width]
    return [f.crop((left, top, left + width, top + height)) for f in frames]


def resize(frames: Frames, width: int, height: int) -> Frames:
    if frame_size(frames) == (width, height):
        return frames
    if isinstance(frames, Tensor):
        if frames.dtype == torch.uint8 and frames.device.type == "cpu":
            # PyTorch's uint8 kernel (vectorised for channels_last, the datasets' layout)
            return F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False,
                                 antialias=True)
        out = F.interpolate(frames.float(), size=(height, width), mode="bilinear", align_corners=False,
                            antialias=True)
        return out.round().clamp(0, 255).to(torch.uint8) if frames.dtype == torch.uint8 else out
    return [f.resize((width, height), Image.Resampling.BILINEAR) for f in frames]


def hflip(frames: Frames) -> Frames:
    if isinstance(frames, Tensor):
        return frames.flip(-1)
    return [f.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for f in frames]


class Compose:
    """Apply transforms in order, passing ``rng`` to each; maps over :class:`Views` and stacks them.

    Example:
        >>> t = Compose([CenterCrop(56), ToTensor()])
        >>> t(torch.zeros(8, 3, 64, 64, dtype=torch.uint8), np.random.default_rng(0)).shape
        torch.Size([8, 3, 56, 56])
    """

    def __init__(self, transforms: Sequence[ClipTransform]) -> None:
        self.transforms = list(transforms)

    def needed_short_side(self) -> int | None:
        """The shortest side the frames can be decoded at without changing what the first step needs
        (None: full size); datasets use it to decode JPEGs and videos at reduced size."""
        first = self.transforms[0] if self.transforms else None
        return getattr(first, "needed_short_side", lambda: None)()

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Tensor | Frames:
        for t in self.transforms:
            frames = Views(t(v, rng) for v in frames) if isinstance(frames, Views) else t(frames, rng)
        return torch.stack(list(frames)) if isinstance(frames, Views) else frames

    def __repr__(self) -> str:
        return f"Compose({', '.join(map(repr, self.transforms))})"


class Resize:
    """Shorter side to ``size`` keeping the aspect ratio (int), or exactly (width, height)."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = size

    def needed_short_side(self) -> int:
        return self.size if isinstance(self.size, int) else min(self.size)

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        if not isinstance(self.size, int):
            return resize(frames, *self.size)
        w, h = frame_size(frames)
        scale = self.size / min(w, h)
        return resize(frames, max(1, round(w * scale)), max(1, round(h * scale)))

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class CenterCrop:
    """The central ``size`` x ``size`` window (frames smaller than that are an error)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        w, h = frame_size(frames)
        if w < self.size or h < self.size:
            raise ValueError(f"cannot centre-crop {self.size}x{self.size} from {w}x{h} frames; "
                             f"resize first (scale_size >= input_size)")
        return crop(frames, (w - self.size) // 2, (h - self.size) // 2, self.size, self.size)

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class MultiScaleCrop:
    """TSN's scale jitter: crop a random (w, h) from ``scales`` x the shorter side, at one of 13 fixed
    positions (corners, centre, edge midpoints, quarter points), then resize to ``size`` x ``size``.

    Crop width and height pick scales at most ``max_distort`` steps apart (aspect-ratio jitter); a
    crop side within 3 pixels of ``size`` snaps to it, as in TSN. ``fixed_positions=False`` draws the
    offset uniformly instead.
    """

    def __init__(self, size: int, scales: Sequence[float] = MULTI_SCALE_CROP_SCALES, *,
                 max_distort: int = 1, fixed_positions: bool = True) -> None:
        self.size, self.scales, self.max_distort = size, tuple(scales), max_distort
        self.fixed_positions = fixed_positions

    def needed_short_side(self) -> int:
        """Frames with this short side give the smallest crop (scale min(scales)) at ``size`` pixels."""
        return math.ceil(self.size / min(self.scales))

    def params(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """(left, top, crop width, crop height) for frames of the given size."""
        base = min(width, height)
        sides = [self.size if abs(int(base * s) - self.size) < 3 else int(base * s) for s in self.scales]
        pairs = [(sw, sh) for i, sh in enumerate(sides) for j, sw in enumerate(sides)
                 if abs(i - j) <= self.max_distort]
        cw, ch = pairs[int(rng.integers(len(pairs)))]
        cw, ch = min(cw, width), min(ch, height)
        if not self.fixed_positions:
            return int(rng.integers(width - cw + 1)), int(rng.integers(height - ch + 1)), cw, ch
        sx, sy = (width - cw) // 4, (height - ch) // 4
        grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0),
                (1, 1), (3, 1), (1, 3), (3, 3)]
        gx, gy = grid[int(rng.integers(len(grid)))]
        return gx * sx, gy * sy, cw, ch

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        left, top, cw, ch = self.params(*frame_size(frames), rng)
        return resize(crop(frames, left, top, cw, ch), self.size, self.size)

    def __repr__(self) -> str:
        return f"MultiScaleCrop({self.size}, scales={self.scales}, max_distort={self.max_distort})"


class RandomHorizontalFlip:
    """Mirror the whole clip with probability ``p``. Never on data with left/right classes."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        return hflip(frames) if rng.uniform() < self.p else frames

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class MultiCrop:
    """Test-time views of ``size`` x ``size``: 3 (start, centre, end along the longer side, TSM's
    "full resolution" testing), 5 (4 corners + centre) or 10 (those 5 and their mirror images)."""

    def __init__(self, size: int, num_crops: int) -> None:
        if num_crops not in (3, 5, 10):
            raise ValueError(f"num_crops must be 3, 5 or 10, got {num_crops}")
        self.size, self.num_crops = size, num_crops

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Views:
        w, h, s = *frame_size(frames), self.size
        if w < s or h < s:
            raise ValueError(f"cannot take {s}x{s} crops from {w}x{h} frames")
        if self.num_crops == 3:
            boxes = ([(0, (h - s) // 2), ((w - s) // 2, (h - s) // 2), (w - s, (h - s) // 2)] if w >= h else
                     [((w - s) // 2, 0), ((w - s) // 2, (h - s) // 2), ((w - s) // 2, h - s)])
        else:
            boxes = [(0, 0), (w - s, 0), (0, h - s), (w - s, h - s), ((w - s) // 2, (h - s) // 2)]
        views = Views(crop(frames, x, y, s, s) for x, y in boxes)
        if self.num_crops == 10:
            views.extend(hflip(v) for v in list(views))
        return views

    def __repr__(self) -> str:
        return f"MultiCrop({self.size}, num_crops={self.num_crops})"


class ToTensor:
    """Frames -> float32 (T, 3, H, W) in [0, 1], then ImageNet normalisation unless ``normalize=False``."""

    def __init__(self, normalize: bool = True, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.normalize = normalize
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Tensor:
        if isinstance(frames, Tensor):
            x = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
        else:
            array = np.stack([np.asarray(f if f.mode == "RGB" else f.convert("RGB")) for f in frames])
            x = torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255)
        x = x.contiguous()
        return (x - self.mean) / self.std if self.normalize else x

    def __repr__(self) -> str:
        return f"ToTensor(normalize={self.normalize})"


class ToUint8:
    """Frames -> uint8 (T, 3, H, W) in [0, 255]; :func:`normalize_clips` finishes the job on the device
    (float, [0, 1], ImageNet normalisation: the same arithmetic as :class:`ToTensor`). A tensor keeps
    its strides (channels-last from the datasets): the loader's collation copies it into the batch
    anyway, and a copy here would be a second one."""

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Tensor:
        if isinstance(frames, Tensor):
            if frames.dtype != torch.uint8:
                raise TypeError(f"ToUint8 takes uint8 frames, got {frames.dtype}")
            return frames
        array = np.stack([np.asarray(f if f.mode == "RGB" else f.convert("RGB")) for f in frames])
        return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return "ToUint8()"


def normalize_clips(clips: Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """A batch of uint8 clips (..., 3, H, W) -> float32, [0, 1], normalised with ``mean``/``std`` (on the
    clips' device); float clips (already normalised by :class:`ToTensor`) pass unchanged.

    Example:
        >>> normalize_clips(torch.full((1, 2, 3, 4, 4), 255, dtype=torch.uint8))[0, 0, :, 0, 0]
        tensor([2.2489, 2.4286, 2.6400])
    """
    if clips.dtype != torch.uint8:
        return clips
    m, s = _statistics(tuple(map(float, mean)), tuple(map(float, std)), clips.device)
    x = clips.to(torch.float32, memory_format=torch.contiguous_format).div_(255)
    return x.sub_(m).div_(s)


@functools.lru_cache(maxsize=16)
def _statistics(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """mean and std as (3, 1, 1) tensors on ``device``, made once per device: a new tensor per batch would be
    a synchronous host-to-device copy per batch on a GPU."""
    return (torch.tensor(mean, dtype=torch.float32, device=device).view(3, 1, 1),
            torch.tensor(std, dtype=torch.float32, device=device).view(3, 1, 1))


def build_transforms(train: bool, input_size: int, flip: bool, scale_size: int | None = None, *,
                     test_crops: int = 1, scales: Sequence[float] = MULTI_SCALE_CROP_SCALES,
                     uint8: bool = True) -> Compose:
    """TSN/TSM clip pipeline. Train: multi-scale crop to ``input_size`` (+ flip if ``flip``). Test:
    shorter side to ``scale_size`` (default ``input_size * 256 / 224``), then one centre crop, or with
    ``test_crops`` in (3, 5, 10) that many crops stacked as (views, T, 3, H, W). Ends with
    :class:`ToUint8` (normalised later by :func:`normalize_clips`), or :class:`ToTensor` with
    ``uint8=False``.

    Example:
        >>> t = build_transforms(train=False, input_size=56, flip=False)  # Resize(64), CenterCrop(56)
        >>> frames = [Image.new("RGB", (64, 64))] * 8
        >>> clip = t(frames, np.random.default_rng(0))
        >>> clip.shape, clip.dtype
        (torch.Size([8, 3, 56, 56]), torch.uint8)
    """
    if train:
        steps: list[ClipTransform] = [MultiScaleCrop(input_size, scales)]
        if flip:
            steps.append(RandomHorizontalFlip())
    else:
        if test_crops == 10 and not flip:
            raise ValueError("10-crop testing mirrors the clip; not allowed on this dataset (flip=False)")
        scale = scale_size if scale_size is not None else round(input_size * 256 / 224)
        crops: ClipTransform = (CenterCrop(input_size) if test_crops == 1 else
                                MultiCrop(input_size, test_crops))
        steps = [Resize(scale), crops]
    return Compose([*steps, ToUint8() if uint8 else ToTensor()])
