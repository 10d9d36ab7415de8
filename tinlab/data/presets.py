"""Dataset presets: the on-disk layout of each dataset tinlab knows (frame names, list files, where
frame folders or video files live, whether a horizontal flip keeps labels valid, class count). Every
preset reads frame folders or video files alike (the list file says which, by its paths). No PyTorch
here: the workflow reads them while Snakemake parses.

Example:
    >>> get_preset("kinetics", num_classes=200).num_classes
    200
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .synthetic import APPEARANCE_CLASSES, DATASETS as SYNTHETIC, MOTION_CLASSES

__all__ = ["DATASET_PRESETS", "DatasetPreset", "get_preset"]


@dataclass(frozen=True)
class DatasetPreset:
    """Layout defaults of a dataset; every field can be overridden (``get_preset(name, flip=True)``)."""
    template: str
    train_list: str
    val_list: str
    flip: bool  # horizontal flip keeps labels valid (False where classes say "left"/"right")
    num_classes: int | None
    frame_dir: str = "frames"  # frame folders live here ("" = the root); "{split}" -> train / val
    video_dir: str = "videos"  # video files live here, when the lists name video files


DATASET_PRESETS: dict[str, DatasetPreset] = {
    # List names follow TSM's preparation scripts; frame_dir is where the extracted frames live.
    "something-v1": DatasetPreset("{:05d}.jpg", "train_videofolder.txt", "val_videofolder.txt", False, 174),
    "something-v2": DatasetPreset("{:06d}.jpg", "train_videofolder.txt", "val_videofolder.txt", False, 174),
    "jester": DatasetPreset("{:05d}.jpg", "train_videofolder.txt", "val_videofolder.txt", False, 27),
    "kinetics": DatasetPreset("img_{:05d}.jpg", "train_videofolder.txt", "val_videofolder.txt", True, 400),
    "ucf101": DatasetPreset("img_{:05d}.jpg", "train_split1.txt", "val_split1.txt", True, 101),
    "hmdb51": DatasetPreset("img_{:05d}.jpg", "train_split1.txt", "val_split1.txt", True, 51),
    # Video files as MMAction2 lays them out (tools/data/sthv2, tools/data/kinetics): lists of
    # "<file> <label>", the frame count read from the file.
    "something-v2-video": DatasetPreset("", "sthv2_train_list_videos.txt", "sthv2_val_list_videos.txt", False, 174,
                                        video_dir="videos"),
    "kinetics-video": DatasetPreset("", "kinetics400_train_list_videos.txt", "kinetics400_val_list_videos.txt",
                                    True, 400, video_dir="videos_{split}"),
    # Flipping swaps "left to right" and "right to left": never on synthetic-motion.
    "synthetic-motion": DatasetPreset("{:05d}.jpg", "train.txt", "val.txt", False, len(MOTION_CLASSES)),
    "synthetic-appearance": DatasetPreset("{:05d}.jpg", "train.txt", "val.txt", True,
                                          len(APPEARANCE_CLASSES)),
    # The temporal probes (tinlab.data.synthetic.PROBES): a flip keeps every label (random directions and
    # sides), so it is on, as wherever it is harmless.
    **{name: DatasetPreset("{:05d}.jpg", "train.txt", "val.txt", True, len(spec.classes))
       for name, spec in SYNTHETIC.items() if name.startswith("probe-")},
}


def get_preset(name: str, **overrides: Any) -> DatasetPreset:
    """The preset ``name`` with some fields replaced."""
    if name not in DATASET_PRESETS:
        raise KeyError(f"unknown dataset {name!r}; presets: {sorted(DATASET_PRESETS)}")
    return replace(DATASET_PRESETS[name], **overrides)
