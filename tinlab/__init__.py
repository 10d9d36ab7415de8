"""tinlab: a reproducible benchmark and ablation harness for temporal modules in video recognition.

What a user calls::

    import tinlab
    tinlab.list_models()                                   # ['tsn', 'tsm', 'tin', 'rtcn', 'tcn', 'tada', ...]
    model = tinlab.create_model("tin", backbone="resnet50", num_classes=174, num_segments=8)
    model = tinlab.create_model("tsm", checkpoint="TSM_something_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth")
    tinlab.load_checkpoint(model, "ckpt.pth.tar")          # -> the format detected
    @tinlab.register_temporal_op("mine", defaults={...})   # your module in every table (docs/add-your-module.md: "Add your module")

Names are resolved on first use, so importing tinlab (or its registry) does not import PyTorch.
"""
from __future__ import annotations

from ._lazy import lazy
from .registry import get_module, list_models, list_temporal_ops, register_block_op, register_temporal_op

__version__ = "0.1.0"

_NAMES = {"create_model": ".models", "create_temporal_op": ".ops", "load_checkpoint": ".models.checkpoints",
          **{m: f".{m}" for m in ("data", "engine", "measure", "models", "ops", "report", "utils")}}
__getattr__ = lazy(__name__, _NAMES)

__all__ = ["__version__", "create_model", "create_temporal_op", "get_module", "list_models", "list_temporal_ops",
           "load_checkpoint", "register_block_op", "register_temporal_op"]
