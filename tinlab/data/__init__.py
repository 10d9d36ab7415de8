"""Data: generated datasets (:mod:`.synthetic`), presets (:mod:`.presets`), frame-folder and video-file
datasets and loaders (:mod:`.dataset`), the video decoder (:mod:`.video`), clip transforms
(:mod:`.transforms`). Clips come out of the loader as uint8; :func:`normalize_clips` (on the device)
makes them the model's float input. Example (writes ``data/synthetic-motion``)::

    from tinlab.data import generate, build_dataset, build_dataloader, set_epoch
    root = generate("synthetic-motion", "data/synthetic-motion")
    train = build_dataset("synthetic-motion", root, split="train", num_segments=8, input_size=56)
    loader = build_dataloader(train, batch_size=16, train=True, num_workers=2, seed=0)

Names are imported on first use (the presets and the generator need no PyTorch).
"""
from __future__ import annotations

from .._lazy import lazy

_WHERE = {
    ".presets": ["DATASET_PRESETS", "DatasetPreset", "get_preset"],
    ".dataset": ["ClipDataset", "ShardSampler", "VideoFileDataset", "VideoFrameDataset", "VideoRecord",
                 "build_dataloader", "build_dataset", "parse_list_file", "sample_indices", "sampler_seed",
                 "set_epoch"],
    ".video": ["VIDEO_EXTENSIONS", "VideoReader", "is_video_path", "write_video"],
    ".synthetic": ["DatasetExistsError", "InvalidParamsError", "generate", "render_video"],
    ".transforms": ["IMAGENET_MEAN", "IMAGENET_STD", "build_transforms", "normalize_clips"],
}
_NAMES = {name: module for module, names in _WHERE.items() for name in names}
__getattr__ = lazy(__name__, _NAMES)
__all__ = sorted(_NAMES)
