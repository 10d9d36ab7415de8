"""tinlab/data/transforms.py: one crop/flip per clip, PIL and tensor paths, normalisation, test views."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tinlab.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, CenterCrop, Compose, MultiCrop,
                                    MultiScaleCrop, RandomHorizontalFlip, Resize, ToTensor, ToUint8,
                                    build_transforms, normalize_clips)


def _clip(t: int = 6, w: int = 40, h: int = 32, seed: int = 0) -> list[Image.Image]:
    """T different random frames."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for _ in range(t)]


def _as_tensor(frames: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(f) for f in frames])).permute(0, 3, 1, 2).contiguous()


def test_train_crop_and_flip_are_shared_by_all_frames() -> None:
    same = [_clip(1)[0]] * 6  # six copies of one image: any per-frame difference would show
    t = build_transforms(train=True, input_size=24, flip=True)
    for seed in range(20):
        out = t(same, np.random.default_rng(seed))
        assert out.shape == (6, 3, 24, 24) and out.dtype == torch.uint8 and out.is_contiguous()
        assert torch.equal(out, out[:1].expand_as(out))


def test_multi_scale_crop_draws_tsn_sizes_and_positions() -> None:
    crop = MultiScaleCrop(24)
    sizes = set()
    for seed in range(200):
        left, top, cw, ch = crop.params(40, 32, np.random.default_rng(seed))
        sizes.add((cw, ch))
        assert {cw, ch} <= {32, 28, 24, 21}  # int(32 * s), s in (1, .875, .75, .66); 24 snaps
        assert left % ((40 - cw) // 4 or 1) == 0 and top % ((32 - ch) // 4 or 1) == 0
        assert left + cw <= 40 and top + ch <= 32
    assert (32, 21) not in sizes and (32, 32) in sizes and (28, 24) in sizes  # max_distort = 1
    assert len(sizes) == 10


def test_flip_only_when_allowed() -> None:
    clip = _clip()
    flips = {False: 0, True: 0}
    for seed in range(20):
        plain = Compose([MultiScaleCrop(24), ToUint8()])(clip, np.random.default_rng(seed))
        for flip in (False, True):
            out = build_transforms(True, 24, flip=flip)(clip, np.random.default_rng(seed))
            if torch.equal(out, plain.flip(-1)):
                flips[flip] += 1
            else:
                assert torch.equal(out, plain)
    assert flips[False] == 0 and 3 <= flips[True] <= 17


def test_pil_and_tensor_paths_agree() -> None:
    clip = _clip()
    steps = Compose([MultiScaleCrop(24), RandomHorizontalFlip(), ToTensor()])
    for seed in range(5):
        a = steps(clip, np.random.default_rng(seed))
        b = steps(_as_tensor(clip), np.random.default_rng(seed))
        # Crop and flip are exact; the two bilinear resizers differ by a few grey levels.
        assert (a - b).abs().mean() < 0.05
    exact = Compose([CenterCrop(24), ToTensor()])
    rng = np.random.default_rng
    assert torch.equal(exact(clip, rng(0)), exact(_as_tensor(clip), rng(0)))


def test_uint8_resize_is_within_one_grey_level_of_the_float_path_in_either_layout() -> None:
    clip = _as_tensor(_clip(w=40, h=30))
    channels_last = torch.from_numpy(clip.permute(0, 2, 3, 1).numpy().copy()).permute(0, 3, 1, 2)  # the datasets'
    float_path = Resize((52, 37))(clip.float(), None).round().clamp(0, 255)
    for frames in (clip, channels_last):
        out = Resize((52, 37))(frames, None)
        assert out.dtype == torch.uint8 and out.shape == (6, 3, 37, 52)
        assert (out.float() - float_path).abs().max() <= 1
    assert torch.equal(Resize((52, 37))(clip, None), Resize((52, 37))(channels_last, None))


def test_normalize_clips_on_the_device_equals_normalising_in_the_worker() -> None:
    clip = _clip()
    steps = [MultiScaleCrop(24), RandomHorizontalFlip()]
    for seed in range(3):
        worker = Compose([*steps, ToTensor()])(_as_tensor(clip), np.random.default_rng(seed))
        later = Compose([*steps, ToUint8()])(_as_tensor(clip), np.random.default_rng(seed))
        assert torch.equal(normalize_clips(later[None])[0], worker)  # the same arithmetic, bit for bit
    assert normalize_clips(worker) is worker  # float clips are taken as already normalised


def test_imagenet_normalisation() -> None:
    mean_colour = tuple(round(m * 255) for m in IMAGENET_MEAN)
    out = ToTensor()([Image.new("RGB", (4, 4), mean_colour)], np.random.default_rng(0))
    assert out.abs().max() < 0.01
    white = ToTensor()([Image.new("RGB", (4, 4), (255, 255, 255))], np.random.default_rng(0))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(white[0, :, 0, 0], expected)


def test_test_pipeline_is_resize_then_centre_crop() -> None:
    clip = _clip(w=64, h=64)
    out = build_transforms(train=False, input_size=56, flip=False)(clip, np.random.default_rng(0))
    # scale_size defaults to 56 * 256 / 224 = 64: no resize, then the central 56 x 56.
    expected = ToUint8()([f.crop((4, 4, 60, 60)) for f in clip], np.random.default_rng(0))
    assert torch.equal(out, expected)
    wide = build_transforms(False, 16, flip=False, scale_size=20)(_clip(w=40, h=20), np.random.default_rng(0))
    assert wide.shape == (6, 3, 16, 16)


@pytest.mark.parametrize("crops", [3, 5, 10])
def test_multi_crop_views(crops: int) -> None:
    clip = _clip(w=48, h=32)
    transform = build_transforms(False, 24, flip=True, scale_size=32, test_crops=crops)
    out = transform(clip, np.random.default_rng(0))
    assert out.shape == (crops, 6, 3, 24, 24)
    assert len({v.sum().item() for v in out}) > 1  # the views are different windows
    if crops == 10:
        assert torch.equal(out[5:], out[:5].flip(-1))


def test_bad_requests() -> None:
    with pytest.raises(ValueError, match="flip=False"):
        build_transforms(False, 24, flip=False, test_crops=10)
    with pytest.raises(ValueError, match="num_crops"):
        MultiCrop(24, 4)
    with pytest.raises(ValueError, match="40x32"):
        CenterCrop(36)(_clip(), np.random.default_rng(0))
