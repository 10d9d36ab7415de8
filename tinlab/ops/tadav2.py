"""TAdaConvV2: TAdaConv whose routing function adds temporal self-attention and LayerNorms (Huang et al.,
"Temporally-Adaptive Models for Efficient Video Understanding", 2023), placed where TAdaConv is.

As in TAdaConv (:mod:`tinlab.ops.tada`), frame t of video b is convolved with its own kernel
``alpha[b, t] * W``, one factor per input channel (``cal_dim="cin"``) or per output channel (``"cout"``),
and optionally a calibrated bias ``beta[b, t] * bias``. What changes is the routing function
:class:`RouteFuncV2`, which reads only the per-frame context (the spatial mean of each frame) and relates
frames through attention instead of v1's global-context branch:

    p = spatial mean of x                          (B, C, T)
    h = QuickGELU(LN(a(p)))                        a: temporal conv, kernel rf_k[0], C -> C / rf_r, bias
    h = h + attn_out(Attention(LN_t(h)))           self-attention over the T frames (below)
    alpha = b(h) + 1                               b: temporal conv, kernel rf_k[1], no bias, zero at start
    beta = b_bias(h) + 1                           only with ``bias=True`` (bias calibration)

LN and LN_t are LayerNorms over the channels of each frame (eps 1e-6); QuickGELU(x) = x * sigmoid(1.702 x).
With ``b`` (and ``b_bias``) zero at initialisation alpha = 1: the calibration starts as the identity and
the block as a plain convolution. Being normalised per frame, the routing's output does not grow with the
scale of its input, in train or eval mode alike: the property v1's BatchNorm lacks (docs/results.md: "TAdaConv").

The attention, as the official code computes it: a 1x1 projection to q, k, v (3 x D channels, D = C / rf_r),
split into heads of ``head_dim`` channels, weights softmax(q k^T / sqrt(D)) over frames (scaled by the
whole width D, not by the head's), then a 1x1 output projection. Head h reads the channels d * H + h of
each of q, k, v (H heads, d < head_dim: strided), and writes its result to channels h * head_dim + d
(contiguous); with one head both orders are the identity. A routing narrower than one head (D < head_dim,
e.g. every stage of tinlab's small CPU networks) gets one head of width D; otherwise D must be a multiple
of ``head_dim``.

Initialisation is the official one: base weight truncated normal (std 0.02), conv bias 0; routing convs
and projections truncated normal (std 0.02) with zero bias; LayerNorms 1/0; ``b`` and ``b_bias`` zero.
As in :class:`tinlab.ops.tada.TAdaConv2d`, the calibrated convolution runs as ONE convolution of the
scaled input (``cin``) or with the output scaled (``cout``), equal to the per-frame-kernel computation.
Parameter names follow the official ``TAdaConv2dV2`` (``weight``, ``bias``) and ``RouteFuncwTransformer``
(``rf.a``, ``rf.norm``, ``rf.norm_transformer``, ``rf.qkv_proj``, ``rf.attn_out``, ``rf.b``,
``rf.b_bias``); :func:`from_official` maps an official state dict onto them.
"""
from __future__ import annotations

import math
import re
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .tada import ChannelLayerNorm, TAdaNorm, clips_of

CAL_DIMS = ("cin", "cout")


def quick_gelu(x: Tensor) -> Tensor:
    """x * sigmoid(1.702 x), the GELU approximation TAdaConvV2's routing uses."""
    return x * torch.sigmoid(1.702 * x)


def _check(name: str, ok: bool, value: object, rule: str) -> None:
    if not ok:
        raise ValueError(f"tadav2 option {name} = {value!r} is not valid: {rule}")


def check_options(*, rf_r: int, rf_k: tuple[int, int], head_dim: int, bias: bool, cal_dim: str) -> None:
    """The options' own rules (before anything is built); errors name the option and the rule."""
    _check("rf_r", isinstance(rf_r, int) and not isinstance(rf_r, bool) and rf_r >= 1, rf_r, "an integer >= 1")
    _check("rf_k", len(tuple(rf_k)) == 2 and all(isinstance(k, int) and k >= 1 and k % 2 for k in rf_k), rf_k,
           "two odd temporal kernel sizes >= 1 (conv a, conv b)")
    _check("head_dim", isinstance(head_dim, int) and not isinstance(head_dim, bool) and head_dim >= 1, head_dim,
           "an integer >= 1")
    _check("bias", isinstance(bias, bool), bias, "true or false")
    _check("cal_dim", cal_dim in CAL_DIMS, cal_dim, f"one of {CAL_DIMS}")


def _trunc_normal(weight: Tensor) -> None:
    nn.init.trunc_normal_(weight, std=0.02, a=-2.0, b=2.0)


class RouteFuncV2(nn.Module):
    """TAdaConvV2's routing function (module doc): (B, C_in, T, H, W) -> alpha (B, C_cal, T) and, with bias
    calibration, beta (B, C_bias, T) (else None). ``out_channels`` = C_cal, ``bias_channels`` = C_bias
    (the conv's output channels); both default to C_in, the official module's only case.

    Example:
        >>> rf = RouteFuncV2(16, 32)
        >>> torch.equal(rf(torch.randn(2, 16, 8, 5, 5))[0], torch.ones(2, 32, 8))  # identity at start
        True
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, *, rf_r: int = 4,
                 rf_k: tuple[int, int] = (3, 3), head_dim: int = 64, bias: bool = False,
                 bias_channels: int | None = None) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        bias_channels = in_channels if bias_channels is None else bias_channels
        width = max(in_channels // rf_r, 1)
        self.head_dim = min(head_dim, width)
        if width % self.head_dim:
            raise ValueError(f"tadav2: the routing width {width} (= {in_channels} channels / rf_r {rf_r}) is not a "
                             f"multiple of head_dim {head_dim}")
        self.heads, self.scale = width // self.head_dim, width ** -0.5
        self.a = nn.Conv1d(in_channels, width, rf_k[0], padding=rf_k[0] // 2)
        self.norm = ChannelLayerNorm(width)
        self.norm_transformer = ChannelLayerNorm(width)
        self.qkv_proj = nn.Conv1d(width, 3 * width, 1)
        self.attn_out = nn.Conv1d(width, width, 1)
        self.b = nn.Conv1d(width, out_channels, rf_k[1], padding=rf_k[1] // 2, bias=False)
        self.b_bias = nn.Conv1d(width, bias_channels, rf_k[1], padding=rf_k[1] // 2, bias=False) if bias else None
        for conv in (self.a, self.qkv_proj, self.attn_out):
            _trunc_normal(conv.weight)
            nn.init.zeros_(conv.bias)
        for conv in (self.b, self.b_bias):
            if conv is not None:
                nn.init.zeros_(conv.weight)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, head_dim={self.head_dim}"

    def attention(self, x: Tensor) -> Tensor:
        """Self-attention over frames of (B, D, T) (module doc for the channel order of the heads)."""
        b, d, t = x.shape
        q, k, v = self.qkv_proj(x).view(b, 3, self.head_dim, self.heads, t).permute(1, 0, 3, 4, 2)  # (B, H, T, hd)
        weights = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)  # (B, H, T, T)
        return self.attn_out((weights @ v).transpose(-2, -1).reshape(b, d, t))

    def forward(self, x5: Tensor) -> tuple[Tensor, Tensor | None]:
        h = quick_gelu(self.norm(self.a(x5.mean((3, 4)))))  # (B, D, T)
        h = h + self.attention(self.norm_transformer(h))
        return self.b(h) + 1, (self.b_bias(h) + 1 if self.b_bias is not None else None)


class TAdaConv2dV2(nn.Module):
    """A 2D convolution whose kernel (and optionally bias) is recalibrated per frame by
    :class:`RouteFuncV2`.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as for ``nn.Conv2d``.
        num_segments: frames per clip T.
        rf_r: reduction of the routing width (C_in / rf_r); rf_k: temporal kernels of its convs a and b.
        head_dim: channels per attention head; bias: a conv bias with per-frame calibration;
        cal_dim: ``"cin"`` (calibrate input channels) or ``"cout"`` (output channels).

    Example:
        >>> conv = TAdaConv2dV2(16, 32, num_segments=8, stride=2)
        >>> conv(torch.randn(2 * 8, 16, 14, 14)).shape
        torch.Size([16, 32, 7, 7])
    """

    def __init__(self, in_channels: int, out_channels: int, num_segments: int, *, kernel_size: int = 3,
                 stride: int = 1, padding: int | None = None, rf_r: int = 4, rf_k: tuple[int, int] = (3, 3),
                 head_dim: int = 64, bias: bool = False, cal_dim: str = "cin") -> None:
        super().__init__()
        rf_k = tuple(rf_k)
        check_options(rf_r=rf_r, rf_k=rf_k, head_dim=head_dim, bias=bias, cal_dim=cal_dim)
        self.in_channels, self.out_channels, self.cal_dim = in_channels, out_channels, cal_dim
        self.num_segments, self.stride = num_segments, stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        _trunc_normal(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.rf = RouteFuncV2(in_channels, in_channels if cal_dim == "cin" else out_channels, rf_r=rf_r, rf_k=rf_k,
                              head_dim=head_dim, bias=bias, bias_channels=out_channels)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, num_segments={self.num_segments}, "
                f"kernel_size={tuple(self.weight.shape[2:])}, stride={self.stride}, padding={self.padding}, "
                f"bias={self.bias is not None}, cal_dim={self.cal_dim!r}")

    def forward(self, x: Tensor) -> Tensor:
        nt, c, h, w = x.shape
        b, t = clips_of(x, self.in_channels, self.num_segments, type(self).__name__)
        alpha, beta = self.rf(x.view(b, t, c, h, w).transpose(1, 2))  # (B, C_cal, T) each
        alpha = alpha.transpose(1, 2).reshape(nt, -1, 1, 1)
        if self.cal_dim == "cin":  # W * alpha over input channels == W on the scaled input
            y = F.conv2d(x * alpha, self.weight, stride=self.stride, padding=self.padding)
        else:  # alpha over output channels scales each output channel
            y = F.conv2d(x, self.weight, stride=self.stride, padding=self.padding) * alpha
        if self.bias is not None:
            y = y + (beta.transpose(1, 2).reshape(nt, -1) * self.bias).view(nt, -1, 1, 1)
        return y


def tadav2_block(in_channels: int, out_channels: int, num_segments: int, *, stride: int = 1, rf_r: int = 4,
                 rf_k: tuple[int, int] = (3, 3), head_dim: int = 64, bias: bool = False, cal_dim: str = "cin"
                 ) -> tuple[TAdaConv2dV2, TAdaNorm]:
    """TAdaConvV2 in place of a ResNet block's spatial conv, with the official internal temporal aggregation
    ``BN(y) + BN_z(AvgPool_t(y))`` (BN_z zero at start) as its norm (registered as ``tadav2``)."""
    return (TAdaConv2dV2(in_channels, out_channels, num_segments, kernel_size=3, stride=stride, rf_r=rf_r,
                         rf_k=rf_k, head_dim=head_dim, bias=bias, cal_dim=cal_dim),
            TAdaNorm(out_channels, num_segments))


_OFFICIAL_NORMS = {"bn_a.": "", "bn_b.": "temporal."}


def from_official(conv: TAdaConv2dV2, state: Mapping[str, Tensor], norm: TAdaNorm | None = None
                  ) -> None:
    """Load an official ``TAdaConv2dV2`` state dict (``weight`` (1, 1, C_out, C_in, k, k), ``bias`` (1, 1,
    C_out), ``rf_func.*`` with 5-D convs, ``bn_a.*`` / ``bn_b.*``) into ``conv`` (and ``norm``). A routing
    function given separately (the official blocks' external ``RouteFuncwTransformer``) is passed with its
    keys prefixed ``rf_func.``. Strict: every key used, every shape matched; errors name the key."""
    own = {**{f"conv.{k}": v for k, v in conv.state_dict().items()},
           **({f"norm.{k}": v for k, v in norm.state_dict().items()} if norm is not None else {})}
    mapped: dict[str, Tensor] = {}
    for key, tensor in state.items():
        if key.startswith("rf_func."):
            ours = "conv.rf." + key[len("rf_func."):]
        elif key in ("weight", "bias"):
            ours = f"conv.{key}"
        else:
            m = re.match(r"^(bn_a\.|bn_b\.)(.+)$", key)
            if m is None or norm is None:
                raise KeyError(f"official TAdaConv2dV2 key {key!r} has no counterpart here")
            ours = f"norm.{_OFFICIAL_NORMS[m[1]]}{m[2]}"
        if ours not in own:
            raise KeyError(f"official key {key!r} -> {ours!r}, which this module does not have")
        if math.prod(tensor.shape) != own[ours].numel():
            raise ValueError(f"official key {key!r}: shape {tuple(tensor.shape)} vs {tuple(own[ours].shape)}")
        mapped[ours] = tensor.reshape(own[ours].shape)
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise KeyError(f"the official state dict lacks {missing[:10]}")
    conv.load_state_dict({k[len("conv."):]: v for k, v in mapped.items() if k.startswith("conv.")})
    if norm is not None:
        norm.load_state_dict({k[len("norm."):]: v for k, v in mapped.items() if k.startswith("norm.")})


# fvcore counts what the forward traces to (conv, layer_norm, matmul, softmax, mul, mean) with its own and
# tinlab's generic handles.
FLOP_HANDLES: dict = {}
