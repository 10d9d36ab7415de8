"""ResNet-18/34/50/101 with torchvision's parameter names and pluggable temporal modules.

Temporal modules are injected by callables (pytorchvideo style), one hook per kind of module
(:mod:`tinlab.registry`), never by a chain of if/else on names:

* ``temporal_op(stage, block, channels) -> nn.Module | None`` builds the op placed in the residual
  branch before conv1 (TSM/TIN/r-TCN/TCN, "residual shift" of the official code), or None;
* ``spatial_conv(stage, block, in_channels, out_channels, stride) -> (conv, norm) | None`` replaces the
  block's spatial conv (conv2 of a bottleneck, the strided conv1 of a basic block) and the norm after
  it (TAdaConv: a TAdaConv2d and ``BN + BN_z(AvgPool_t)``); ``norm`` None keeps the BatchNorm.

``stem="conv"`` drops the max pool (a 7x7/2 conv, BN, ReLU, as the official TAda2D network), and
``stage1_stride=2`` moves that downsampling into the first block of stage 1.

Parameter names of everything torchvision has are torchvision's (``layer2.0.conv1.weight`` ...), so a
torchvision ImageNet checkpoint loads with :func:`load_pretrained`; temporal parameters live under
``*.temporal.*``, ``*.conv2.route.*`` / ``*.conv1.route.*`` and ``*.bn{1,2}.temporal.*``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from .archs import ARCHS

TemporalOpFactory = Callable[[int, int, int], Optional[nn.Module]]
SpatialConvFactory = Callable[[int, int, int, int, int], Optional[tuple[nn.Module, Optional[nn.Module]]]]

STEMS = ("torchvision", "conv")


def _conv_and_norm(inplanes: int, planes: int, stride: int,
                   injected: tuple[nn.Module, nn.Module | None] | None) -> tuple[nn.Module, nn.Module]:
    conv, norm = injected if injected is not None else (None, None)
    if conv is None:
        conv = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
    return conv, norm if norm is not None else nn.BatchNorm2d(planes)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 temporal: nn.Module | None = None,
                 spatial: tuple[nn.Module, nn.Module | None] | None = None) -> None:
        super().__init__()
        self.temporal = temporal
        self.conv1, self.bn1 = _conv_and_norm(inplanes, planes, stride, spatial)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if self.temporal is not None:
            x = self.temporal(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 temporal: nn.Module | None = None,
                 spatial: tuple[nn.Module, nn.Module | None] | None = None) -> None:
        super().__init__()
        self.temporal = temporal
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv_and_norm(planes, planes, stride, spatial)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if self.temporal is not None:
            x = self.temporal(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Frame-level ResNet trunk: (N*T, 3, H, W) -> (N*T, num_features) pooled features.

    Args:
        arch: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
        width_mult: scales every stage's width (and the stem); 1.0 is the standard network.
        small_stem: a 3x3 stride-1 stem without max-pool, for small (e.g. 32-64 px) CPU-sized inputs.
        stem: ``"torchvision"`` (7x7/2 conv, BN, ReLU, 3x3/2 max pool) or ``"conv"`` (no max pool).
        stage1_stride: stride of the first block of stage 1 (2 with ``stem="conv"`` keeps the overall
            stride; 1 with a small stem, which has no downsampling to move).
        temporal_op, spatial_conv: the injection hooks (module doc).

    Example:
        >>> net = ResNet("resnet18", width_mult=0.25, small_stem=True)
        >>> net(torch.randn(4, 3, 32, 32)).shape
        torch.Size([4, 128])
    """

    def __init__(self, arch: str = "resnet50", *, width_mult: float = 1.0, small_stem: bool = False,
                 stem: str = "torchvision", stage1_stride: int = 1, temporal_op: TemporalOpFactory | None = None,
                 spatial_conv: SpatialConvFactory | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown backbone {arch!r}; available: {sorted(ARCHS)}")
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        kind, layers = ARCHS[arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.arch, self.width_mult, self.small_stem, self.stem = arch, width_mult, small_stem, stem
        widths = [max(int(round(w * width_mult)), 1) for w in (64, 128, 256, 512)]
        self.inplanes = widths[0]
        if small_stem:
            self.conv1 = nn.Conv2d(3, self.inplanes, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_stem or stem == "conv" else nn.MaxPool2d(3, stride=2, padding=1)
        injected: list[nn.Module] = []
        for stage, (planes, num_blocks) in enumerate(zip(widths, layers)):
            stride = (1 if small_stem else stage1_stride) if stage == 0 else 2
            blocks = []
            for i in range(num_blocks):
                s = stride if i == 0 else 1
                downsample = None
                if i == 0 and (s != 1 or self.inplanes != planes * block.expansion):
                    downsample = nn.Sequential(
                        nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=s, bias=False),
                        nn.BatchNorm2d(planes * block.expansion))
                temporal = temporal_op(stage, i, self.inplanes) if temporal_op is not None else None
                spatial_in = self.inplanes if block is BasicBlock else planes
                spatial = spatial_conv(stage, i, spatial_in, planes, s) if spatial_conv is not None else None
                injected += [m for m in (temporal, *(spatial or ())) if m is not None]
                blocks.append(block(self.inplanes, planes, s, downsample, temporal=temporal, spatial=spatial))
                self.inplanes = planes * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.inplanes
        # torchvision's initialisation for the plain ResNet parts; injected modules keep their own.
        own = {id(m) for module in injected for m in module.modules()}
        for m in self.modules():
            if id(m) in own:
                continue
            if type(m) is nn.Conv2d:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif type(m) is nn.BatchNorm2d:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def load_pretrained(backbone: ResNet, path: str | Path) -> dict[str, list[str]]:
    """Load a torchvision-format ImageNet checkpoint (local file, no download) into ``backbone``.

    Accepts a bare state_dict or one under ``state_dict``/``model``, with or without a ``module.``
    prefix. The classifier (``fc.*``) is ignored. Every parameter that a plain torchvision ResNet of
    this depth and width has must be present with the right shape; otherwise the error names the file
    and the keys at fault. The others (a temporal module's own, or a shortcut the module's network
    adds, as TAda2D's stage-1 downsampling does on ResNet-18) keep their initialisation.
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
    plain = ResNet(backbone.arch, width_mult=backbone.width_mult, small_stem=backbone.small_stem).state_dict()
    missing_required = [k for k in missing if k in plain]
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
