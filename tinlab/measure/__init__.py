"""What a model costs: FLOPs and parameters (:mod:`.cost`), latency (:mod:`.timing`), the paper-scale
complexity table (:mod:`.complexity`) and the TIN = r-TCN verification (:mod:`.equivalence`).

>>> import torch, tinlab
>>> from tinlab.measure import flops, parameters
>>> m = tinlab.create_model("tsm", backbone="resnet18", num_classes=10, num_segments=8,
...                         width_mult=0.25, small_stem=True)
>>> flops(m, torch.zeros(1, 8, 3, 32, 32)) > 0, parameters(m) > 0
(True, True)
"""
from __future__ import annotations

from .complexity import complexity_row, run_complexity
from .cost import FLOP_HANDLES, flop_analysis, flops, parameters
from .equivalence import functional_case, model_case, run_equivalence
from .timing import interleaved_times, latency, summarize

__all__ = ["FLOP_HANDLES", "complexity_row", "flop_analysis", "flops", "functional_case", "interleaved_times",
           "latency", "model_case", "parameters", "run_complexity", "run_equivalence", "summarize"]
