"""The recogniser around a frame-level trunk: TSN's head (the default) or the pooled head of TAda2D."""
from __future__ import annotations

from typing import Iterator

from torch import Tensor, nn

from ..ops.tin import TemporalInterlace
from .resnet import ResNet

HEADS = ("frames", "pool")


class Recognizer(nn.Module):
    """(N, T, 3, H, W) clips -> (N, num_classes) logits.

    ``head="frames"`` (TSN, TSM, TIN): dropout and the fc on every frame's features, the T logits
    averaged ("consensus"); fc initialised Normal(0, 0.001), zero bias, as in the TSM/TIN code.
    ``head="pool"`` (the official TAda2D): the features averaged over frames, then dropout and the fc,
    at PyTorch's default initialisation. Without dropout the two compute the same function (the fc is
    linear); they differ in where dropout draws its masks and in the fc's cost (T times vs once).
    """

    def __init__(self, backbone: ResNet, num_classes: int, num_segments: int, *, dropout: float = 0.5,
                 name: str = "", head: str = "frames") -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.name, self.num_classes, self.num_segments, self.head = name, num_classes, num_segments, head
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.num_features, num_classes)
        if head == "frames":
            nn.init.normal_(self.fc.weight, 0, 0.001)
            nn.init.zeros_(self.fc.bias)

    def forward(self, clips: Tensor) -> Tensor:
        if clips.dim() != 5 or clips.shape[1] != self.num_segments or clips.shape[2] != 3:
            raise ValueError(f"{self.name or 'model'} expects clips (N, T={self.num_segments}, 3, H, W), "
                             f"got {tuple(clips.shape)}")
        n, t = clips.shape[:2]
        features = self.backbone(clips.flatten(0, 1))
        if self.head == "pool":
            return self.fc(self.dropout(features.view(n, t, -1).mean(1)))
        return self.fc(self.dropout(features)).view(n, t, -1).mean(1)

    def interlace_modules(self) -> Iterator[tuple[str, TemporalInterlace]]:
        """(name, module) of every TIN / r-TCN op, in network order (for offset/weight analysis)."""
        for name, m in self.named_modules():
            if isinstance(m, TemporalInterlace):
                yield name, m
