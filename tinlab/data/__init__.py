"""Data: generated datasets (:mod:`.synthetic`), frame-folder datasets and loaders (:mod:`.dataset`),
clip transforms (:mod:`.transforms`). Example (writes ``data/synthetic-motion``)::

    from tinlab.data import generate, build_dataset, build_dataloader, set_epoch
    root = generate("synthetic-motion", "data/synthetic-motion")
    train = build_dataset("synthetic-motion", root, split="train", num_segments=8, input_size=56)
    loader = build_dataloader(train, batch_size=16, train=True, num_workers=2, seed=0)
"""
from __future__ import annotations

from .dataset import (DATASET_PRESETS, DatasetPreset, VideoFrameDataset, VideoRecord,
                      ShardSampler, build_dataloader, build_dataset, get_preset, parse_list_file, sample_indices,
                      sampler_seed, set_epoch)
from .synthetic import DATASETS as SYNTHETIC_DATASETS
from .synthetic import DatasetExistsError, InvalidParamsError, generate, render_video
from .transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

__all__ = [
    "DATASET_PRESETS", "DatasetPreset", "VideoFrameDataset", "VideoRecord",
    "ShardSampler", "build_dataloader", "build_dataset", "get_preset", "parse_list_file", "sample_indices",
    "sampler_seed", "set_epoch",
    "SYNTHETIC_DATASETS", "DatasetExistsError", "InvalidParamsError", "generate", "render_video",
    "IMAGENET_MEAN", "IMAGENET_STD", "build_transforms",
]
