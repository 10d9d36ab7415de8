"""ResNet-18/34/50/101 with torchvision's parameter names and pluggable temporal ops.

A temporal op is injected by a callable (pytorchvideo style) rather than by a chain of if/else:

* ``temporal_op(stage, block, channels) -> nn.Module | None`` builds the op placed in the residual
  branch before conv1 (TSM/TIN/r-TCN/TCN, "residual shift" of the official code), or None.
* ``tada_segments = T`` replaces the strided 3x3 conv of every block (conv2 of a bottleneck, conv1 of a
  basic block) by a :class:`~tinlab.ops.TAdaConv2d` and adds the TAda2D block's temporal branch
  ``BN_z(AvgPool_t(out))`` (zero-initialised, so the block starts as a plain ResNet block).

Parameter names of everything torchvision has are torchvision's (``layer2.0.conv1.weight`` ...), so a
torchvision ImageNet checkpoint loads with :func:`load_pretrained`; temporal parameters live under
``*.temporal.*``, ``*.conv2.route.*`` / ``*.conv1.route.*`` and ``*.bn{1,2}_temporal.*``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from ..ops.tada import TAdaConv2d

TemporalOpFactory = Callable[[int, int, int], Optional[nn.Module]]

ARCHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


def temporal_avg_pool(x: Tensor, num_segments: int) -> Tensor:
    """Mean over frames t-1, t, t+1 (zeros beyond the clip, divisor 3), on (N*T, C, H, W)."""
    nt, c, h, w = x.shape
    x5 = x.view(nt // num_segments, num_segments, c, h, w).transpose(1, 2)  # (N, C, T, H, W)
    y = F.avg_pool3d(x5, kernel_size=(3, 1, 1), stride=1, padding=(1, 0, 0))
    return y.transpose(1, 2).reshape(nt, c, h, w)


def _spatial_conv(inplanes: int, planes: int, stride: int, tada_segments: int | None) -> nn.Module:
    if tada_segments is not None:
        return TAdaConv2d(inplanes, planes, tada_segments, kernel_size=3, stride=stride)
    return nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)


def _tada_bn(planes: int, tada_segments: int | None) -> nn.Module | None:
    return None if tada_segments is None else nn.BatchNorm2d(planes)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 temporal: nn.Module | None = None, tada_segments: int | None = None) -> None:
        super().__init__()
        self.temporal = temporal
        self.conv1 = _spatial_conv(inplanes, planes, stride, tada_segments)
        self.bn1 = nn.BatchNorm2d(planes)
        self.bn1_temporal = _tada_bn(planes, tada_segments)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.tada_segments = tada_segments

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if self.temporal is not None:
            x = self.temporal(x)
        out = self.conv1(x)
        if self.bn1_temporal is not None:
            out = self.bn1(out) + self.bn1_temporal(temporal_avg_pool(out, self.tada_segments))
        else:
            out = self.bn1(out)
        out = self.bn2(self.conv2(self.relu(out)))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 temporal: nn.Module | None = None, tada_segments: int | None = None) -> None:
        super().__init__()
        self.temporal = temporal
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _spatial_conv(planes, planes, stride, tada_segments)
        self.bn2 = nn.BatchNorm2d(planes)
        self.bn2_temporal = _tada_bn(planes, tada_segments)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.tada_segments = tada_segments

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if self.temporal is not None:
            x = self.temporal(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        if self.bn2_temporal is not None:
            out = self.bn2(out) + self.bn2_temporal(temporal_avg_pool(out, self.tada_segments))
        else:
            out = self.bn2(out)
        out = self.relu(out)
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Frame-level ResNet trunk: (N*T, 3, H, W) -> (N*T, num_features) pooled features.

    Args:
        arch: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
        width_mult: scales every stage's width (and the stem); 1.0 is the standard network.
        small_stem: a 3x3 stride-1 stem without max-pool, for small (e.g. 32-64 px) CPU-sized inputs.
        temporal_op: factory ``(stage, block, channels) -> module | None`` for the op before conv1.
        tada_segments: T to build TAda blocks, or None.

    Example:
        >>> net = ResNet("resnet18", width_mult=0.25, small_stem=True)
        >>> net(torch.randn(4, 3, 32, 32)).shape
        torch.Size([4, 128])
    """

    def __init__(self, arch: str = "resnet50", *, width_mult: float = 1.0, small_stem: bool = False,
                 temporal_op: TemporalOpFactory | None = None, tada_segments: int | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown backbone {arch!r}; available: {sorted(ARCHS)}")
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        kind, layers = ARCHS[arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.arch, self.width_mult, self.small_stem = arch, width_mult, small_stem
        widths = [max(int(round(w * width_mult)), 1) for w in (64, 128, 256, 512)]
        self.inplanes = widths[0]
        if small_stem:
            self.conv1 = nn.Conv2d(3, self.inplanes, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_stem else nn.MaxPool2d(3, stride=2, padding=1)
        for stage, (planes, num_blocks) in enumerate(zip(widths, layers)):
            stride = 1 if stage == 0 else 2
            blocks = []
            for i in range(num_blocks):
                downsample = None
                if i == 0 and (stride != 1 or self.inplanes != planes * block.expansion):
                    downsample = nn.Sequential(
                        nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(planes * block.expansion))
                temporal = temporal_op(stage, i, self.inplanes) if temporal_op is not None else None
                blocks.append(block(self.inplanes, planes, stride if i == 0 else 1, downsample,
                                    temporal=temporal, tada_segments=tada_segments))
                self.inplanes = planes * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.inplanes
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, (nn.Conv2d, TAdaConv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():  # TAda2D: BN_z starts at zero, so each block starts as a ResNet block
            for bn in (getattr(m, "bn1_temporal", None), getattr(m, "bn2_temporal", None)):
                if bn is not None:
                    nn.init.zeros_(bn.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


# Keys a torchvision checkpoint may lack in a tinlab backbone: the temporal modules' own parameters.
_TEMPORAL_KEY_PARTS = (".temporal.", ".route.", "_temporal.")


def load_pretrained(backbone: ResNet, path: str | Path) -> dict[str, list[str]]:
    """Load a torchvision-format ImageNet checkpoint (local file, no download) into ``backbone``.

    Accepts a bare state_dict or one under ``state_dict``/``model``, with or without a ``module.``
    prefix. The classifier (``fc.*``) is ignored. Every non-temporal parameter of the backbone must
    be present with the right shape; otherwise the error names the file and the keys at fault.
    Returns ``{"missing_temporal": [...], "ignored": [...]}``.
    """
    from ..utils.io import load_tensors

    path = Path(path)
    state = load_tensors(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state_dict, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = backbone.state_dict()
    ignored = sorted(k for k in state if k not in own)
    missing = [k for k in own if k not in state]
    missing_required = [k for k in missing if not any(p in k for p in _TEMPORAL_KEY_PARTS)]
    if missing_required:
        raise CheckpointError(f"{path}: checkpoint lacks {len(missing_required)} backbone key(s), e.g. "
                       f"{missing_required[:5]}; is it a torchvision {backbone.arch} checkpoint?")
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if wrong:
        raise CheckpointError(f"{path}: shape mismatch for {len(wrong)} key(s): {wrong[:5]} "
                         f"(width_mult={backbone.width_mult}, small_stem={backbone.small_stem})")
    backbone.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return {"missing_temporal": sorted(set(missing) - set(missing_required)), "ignored": ignored}
