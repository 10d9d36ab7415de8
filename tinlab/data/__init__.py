"""Data: generated datasets (:mod:`.synthetic`), presets (:mod:`.presets`), frame-folder datasets and
loaders (:mod:`.dataset`), clip transforms (:mod:`.transforms`). Example (writes ``data/synthetic-motion``)::

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
    ".dataset": ["ShardSampler", "VideoFrameDataset", "VideoRecord", "build_dataloader", "build_dataset",
                 "parse_list_file", "sample_indices", "sampler_seed", "set_epoch"],
    ".synthetic": ["DatasetExistsError", "InvalidParamsError", "generate", "render_video"],
    ".transforms": ["IMAGENET_MEAN", "IMAGENET_STD", "build_transforms"],
}
_NAMES = {name: module for module, names in _WHERE.items() for name in names}
__getattr__ = lazy(__name__, _NAMES)
__all__ = sorted(_NAMES)
