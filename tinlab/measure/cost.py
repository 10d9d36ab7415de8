"""FLOPs (multiply-accumulates) and parameters, counted the way the video literature counts them.

Convention (one multiply-add = 1 "FLOP", as fvcore, the TSM/TIN papers and MMAction2 quote them):

==============================================  ==========================================================
op                                              counted
==============================================  ==========================================================
convolution, linear, matmul, einsum             multiply-adds (fvcore's handles)
batch norm                                      0: folded into the preceding conv at inference, as in the
                                                published ResNet-50 figure (4.1 G per 224x224 frame)
``tinlab::interlace_frames`` (TIN's             2 per interlaced output element: ``a0 * x0 + a1 * x1``,
interpolation and temporal attention, fused)    the frame weight folded into a0/a1; copied rows 0
elementwise mul / div (weights, calibration)    1 per output element
mean, adaptive average pool                     1 per input element
temporal / spatial average pool                 kernel volume per output element
softmax                                         1 per output element (the normalising division)
layer norm                                      5 per element (mean, square, variance, scale, affine;
                                                fvcore's own rule): unlike a BatchNorm it cannot fold
add, sub, neg, abs, comparisons, sigmoid,       0: additions on their own and nonlinearities are not
ReLU, data movement                             multiply-adds (residual adds are not counted either)
==============================================  ==========================================================

Every op a tinlab model traces to has an entry, so ``unsupported_ops()`` is empty. The tests
cross-check every model's count against ``torch.utils.flop_counter.FlopCounterMode`` run on the same
model with tinlab's fused ops replaced by their plain PyTorch decompositions (so their handles here
are checked against the multiplies those decompositions execute, not against a copy of the formula).
"""
from __future__ import annotations

from math import prod
from typing import Any, Callable

from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import Tensor, nn

__all__ = ["FLOP_HANDLES", "flop_analysis", "flops", "handles", "parameters"]


def _numel(value: Any) -> int:
    shape = get_shape(value)
    # None or (): size arithmetic on traced Python ints (``n * h * w`` in a reshape), not model math.
    return prod(shape) if shape else 0


def _per_output(scale: int) -> Callable[[list, list], int]:
    return lambda inputs, outputs: scale * _numel(outputs[0])


def _per_input(inputs: list, outputs: list) -> int:
    return _numel(inputs[0])


def _zero(inputs: list, outputs: list) -> int:
    return 0


def _avg_pool(inputs: list, outputs: list) -> int:
    kernel = inputs[1].toIValue()
    if kernel is None:  # a traced list: read its constant elements
        kernel = [v.toIValue() for v in inputs[1].node().inputs()]
    return _numel(outputs[0]) * prod(kernel)


_ZERO_OPS = ["aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::rsub", "aten::neg",
             "aten::abs", "aten::sigmoid", "aten::lt", "aten::le", "aten::repeat_interleave",
             "aten::view_as", "aten::empty_like", "aten::fill_", "aten::max_pool2d", "aten::pad",
             "aten::replication_pad2d", "aten::batch_norm", "aten::clone", "aten::floor", "aten::relu",
             "aten::reflection_pad2d", "aten::expand_as", "aten::index_select", "aten::zero_"]

FLOP_HANDLES: dict[str, Callable[[list, list], int] | None] = {
    **{op: _zero for op in _ZERO_OPS},
    "aten::mul": _per_output(1), "aten::mul_": _per_output(1),
    "aten::div": _per_output(1), "aten::div_": _per_output(1),
    "aten::mean": _per_input,
    "aten::avg_pool3d": _avg_pool, "aten::avg_pool2d": _avg_pool,
    "aten::softmax": _per_output(1),
}


def handles() -> dict[str, Callable[[list, list], int] | None]:
    """The generic handles above plus those every registered temporal module declares for its custom
    ops (``flop_handles=`` at registration; tinlab's own: ``FLOP_HANDLES`` of ``tinlab/ops/*.py``)."""
    from ..registry import get_module, list_temporal_ops

    own = {op: fn for name in list_temporal_ops() for op, fn in get_module(name).handles().items()}
    return {**FLOP_HANDLES, **own}


def flop_analysis(model: nn.Module, clip: Tensor) -> FlopCountAnalysis:
    """fvcore analysis of ``model(clip)`` in eval mode with tinlab's op handles (see module doc)."""
    was_training = model.training
    model.eval()
    try:
        analysis = FlopCountAnalysis(model, (clip,)).set_op_handle(**handles())
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.total()  # trace now, while the model is in eval mode
    finally:
        model.train(was_training)
    return analysis


def flops(model: nn.Module, clip: Tensor) -> int:
    """Multiply-adds of one forward pass of ``model`` on ``clip`` (one view), in eval mode.

    Example:
        >>> import tinlab
        >>> m = tinlab.create_model("tsn", backbone="resnet50", num_classes=174, num_segments=8)
        >>> round(flops(m, torch.zeros(1, 8, 3, 224, 224)) / 1e9, 1)   # published: 8 x 4.11 G
        32.7
    """
    analysis = flop_analysis(model, clip)
    unsupported = analysis.unsupported_ops()
    if unsupported:
        raise RuntimeError(f"no FLOP handle for {sorted(unsupported)} (seen {dict(unsupported)} times): a temporal "
                           f"module declares handles for its custom ops when it registers (flop_handles=...), "
                           f"so that no arithmetic goes uncounted")
    return int(analysis.total())


def parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())
