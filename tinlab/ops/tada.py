"""TAdaConv (v1): temporally adaptive 2D convolution (Huang et al., ICLR 2022), and the TAda2D block.

Each frame t of video b is convolved with its own calibrated kernel ``W[b, t] = alpha[b, t] * W``,
where ``alpha`` (one factor per input channel) comes from a routing function over the local
(per-frame) and global (whole-clip) context of the input. The base kernel ``W`` keeps the
(C_out, C_in, k, k) shape and the name of the 2D convolution it replaces, so ImageNet weights load.

A convolution is linear in each input channel, so ``conv(x, W * diag(alpha)) = conv(x * alpha, W)``:
tinlab scales each frame's input channels by alpha and runs ONE ordinary convolution. Outputs and
gradients are those of the official per-frame-kernel computation (the tests hold both against a
per-frame loop that convolves every frame with its own kernel ``alpha * W``), without its cost: the
official (B * T)-group convolution is several times slower on CPU. FLOPs count what runs: the conv, plus one multiply per input element for the scaling.

The TAda2D block (:func:`tada_block`, registered as the ``tada`` block module) replaces a ResNet
block's 3x3 convolution by a :class:`TAdaConv2d` and the BatchNorm after it by :class:`TAdaNorm`,
``BN(out) + BN_z(AvgPool_t(out))`` with BN_z zero at start, so the block starts as a plain one.
Initialisation is the official code's (alibaba-mmai-research/TAdaConv, ``_init_convnet_weights``):
the base weight kaiming-uniform over its official 6-D shape (1, 1, C_out, C_in, k, k), i.e. with
fan_in = C_out * C_in * k * k; the routing convs kaiming-normal (fan_out) with zero bias; the last
routing conv zero.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


ROUTE_NORMS = ("batchnorm", "layernorm")


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each frame of a (B, C, T) sequence (eps 1e-6, as TAdaConvV2's
    routing function). Unlike a BatchNorm it has no running statistics: train and eval compute the same
    function, and its output does not grow with the scale of its input."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.transpose(1, 2), self.weight.shape, self.weight, self.bias, self.eps).transpose(1, 2)


class RouteFunc(nn.Module):
    """alpha = Conv1d_b(ReLU(Norm(Conv1d_a(p + Conv_g(g))))) + 1, shape (B, C, T).

    p is the spatial mean (B, C, T), g the mean over time and space (B, C, 1). Conv1d_b has no bias and
    zero weights at initialisation, so alpha = 1: the calibration starts as the identity. ``norm``:
    ``"batchnorm"`` (the official TAda2D, parameters ``bn.*``) or ``"layernorm"`` (a per-frame
    :class:`ChannelLayerNorm`, parameters ``norm.*``, the normalisation TAdaConvV2's routing uses). In
    eval mode a BatchNorm is a fixed affine map, so alpha grows with the scale of the block's input; a
    LayerNorm normalises that scale away (docs/results.md: "TAdaConv").
    """

    def __init__(self, channels: int, *, reduction: int = 4, kernel_sizes: tuple[int, int] = (3, 3),
                 norm: str = "batchnorm") -> None:
        super().__init__()
        if norm not in ROUTE_NORMS:
            raise ValueError(f"TAdaConv route_norm must be one of {ROUTE_NORMS}, got {norm!r}")
        hidden = max(channels // reduction, 1)
        self.g = nn.Conv1d(channels, channels, 1)
        self.a = nn.Conv1d(channels, hidden, kernel_sizes[0], padding=kernel_sizes[0] // 2)
        if norm == "batchnorm":
            self.bn = nn.BatchNorm1d(hidden)
        else:
            self.norm = ChannelLayerNorm(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.b = nn.Conv1d(hidden, channels, kernel_sizes[1], padding=kernel_sizes[1] // 2, bias=False)
        for conv in (self.g, self.a):  # the official c2_msra_fill
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.b.weight)

    def forward(self, x5: Tensor) -> Tensor:
        p = x5.mean((3, 4)).transpose(1, 2)  # (B, C, T)
        g = p.mean(2, keepdim=True)
        h = self.a(p + self.g(g))
        return self.b(self.relu(self.bn(h) if hasattr(self, "bn") else self.norm(h))) + 1


def clips_of(x: Tensor, channels: int, num_segments: int, name: str) -> tuple[int, int]:
    """(clips B, frames T) of a (B*T, C, H, W) input, checked: C must be ``channels`` and T divide B*T."""
    nt, c = x.shape[:2]
    if x.dim() != 4 or c != channels or nt % num_segments:
        raise ValueError(f"{name} expects (N*T, {channels}, H, W) with T = {num_segments} dividing the first "
                         f"dimension, got {tuple(x.shape)}")
    return nt // num_segments, num_segments


class TAdaConv2d(nn.Module):
    """A 2D convolution whose input-channel weights are recalibrated per frame.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as for ``nn.Conv2d`` (no bias).
        num_segments: frames per clip T.
        route_norm: the routing function's normalisation, ``"batchnorm"`` (official) or ``"layernorm"``.

    Example:
        >>> conv = TAdaConv2d(16, 32, num_segments=8, stride=2)
        >>> conv(torch.randn(2 * 8, 16, 14, 14)).shape
        torch.Size([16, 32, 7, 7])
    """

    def __init__(self, in_channels: int, out_channels: int, num_segments: int, *, kernel_size: int = 3,
                 stride: int = 1, padding: int | None = None, reduction: int = 4,
                 route_norm: str = "batchnorm") -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_segments, self.stride = num_segments, stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        # The official base weight is (1, 1, C_out, C_in, k, k): kaiming-uniform over that view.
        nn.init.kaiming_uniform_(self.weight.data.view(1, 1, *self.weight.shape), a=math.sqrt(5))
        self.route = RouteFunc(in_channels, reduction=reduction, norm=route_norm)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, num_segments={self.num_segments}, "
                f"kernel_size={tuple(self.weight.shape[2:])}, stride={self.stride}, padding={self.padding}")

    def forward(self, x: Tensor) -> Tensor:
        nt, c, h, w = x.shape
        b, t = clips_of(x, self.in_channels, self.num_segments, type(self).__name__)
        alpha = self.route(x.view(b, t, c, h, w))  # (B, C_in, T)
        # Frame (b, t)'s kernel W * alpha[b, :, t] over input channels == W on the scaled input.
        scaled = x * alpha.transpose(1, 2).reshape(nt, c, 1, 1)
        return F.conv2d(scaled, self.weight, stride=self.stride, padding=self.padding)


def temporal_avg_pool_3d(x: Tensor, num_segments: int) -> Tensor:
    """:func:`temporal_avg_pool` as one ``avg_pool3d`` on the (N, C, T, H, W) transpose."""
    nt, c, h, w = x.shape
    x5 = x.view(nt // num_segments, num_segments, c, h, w).transpose(1, 2)
    y = F.avg_pool3d(x5, kernel_size=(3, 1, 1), stride=1, padding=(1, 0, 0))
    return y.transpose(1, 2).reshape(nt, c, h, w)


def temporal_avg_pool(x: Tensor, num_segments: int) -> Tensor:
    """Mean over frames t-1, t, t+1 (zeros beyond the clip, divisor 3), on (N*T, C, H, W): the official
    ``AvgPool3d((3, 1, 1), stride 1, padding (1, 0, 0))``.

    On CPU: two adds of neighbouring frames on the contiguous (N, T, C*H*W) view, with no transpose copies
    (``avg_pool3d`` needs the (N, C, T, H, W) transpose, copied in and out). Elsewhere (one kernel instead of
    five on a GPU) and under ``torch.jit.trace`` (FLOP counting: the count follows the pooling convention
    of :mod:`tinlab.measure.cost`) the ``avg_pool3d`` form runs; the tests hold the two forms equal.
    """
    if x.device.type != "cpu" or torch.jit.is_tracing():
        return temporal_avg_pool_3d(x, num_segments)
    nt, c, h, w = x.shape
    n = nt // num_segments
    padded = F.pad(x.reshape(n, num_segments, c * h * w), (0, 0, 1, 1))
    return ((padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]) / 3).view(nt, c, h, w)


class TAdaNorm(nn.BatchNorm2d):
    """The TAda2D block's norm: ``BN(x) + BN_z(AvgPool_t(x))``, BN_z (``temporal``) zero-initialised.

    A BatchNorm2d itself (its parameters keep the names of the norm it replaces, so ImageNet weights
    load), with the temporal branch as a child.

    Example:
        >>> norm = TAdaNorm(16, num_segments=8)
        >>> x = torch.randn(2 * 8, 16, 5, 5)
        >>> torch.equal(norm.eval()(x), nn.BatchNorm2d(16).eval()(x))  # starts as a plain BatchNorm
        True
    """

    def __init__(self, channels: int, num_segments: int) -> None:
        super().__init__(channels)
        self.num_segments = num_segments
        self.temporal = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.temporal.weight)
        nn.init.zeros_(self.temporal.bias)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + self.temporal(temporal_avg_pool(x, self.num_segments))


def tada_block(in_channels: int, out_channels: int, num_segments: int, *, stride: int = 1,
               route_norm: str = "batchnorm") -> tuple[TAdaConv2d, TAdaNorm]:
    """The TAda2D replacement of a ResNet block's spatial conv and its norm (registered as ``tada``)."""
    return (TAdaConv2d(in_channels, out_channels, num_segments, kernel_size=3, stride=stride, route_norm=route_norm),
            TAdaNorm(out_channels, num_segments))


# fvcore counts what TAdaConv2d's forward traces to (conv, mul, mean, avg_pool3d) with its own and
# tinlab's generic handles: no custom op of its own.
FLOP_HANDLES: dict = {}
