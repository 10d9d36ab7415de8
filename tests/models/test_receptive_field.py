"""The temporal receptive field of each network, measured: which input frames one frame's backbone features
depend on (the support of the gradient, in eval mode so that BatchNorm does not mix frames), on 32-frame
clips and a ResNet-18 (8 temporal blocks). It bounds what an order probe can measure (docs/probes.md, "What
a reach probe can separate")."""
from __future__ import annotations

import torch

from tinlab.models import create_model
from tinlab.ops.tin import OffsetNet

FRAMES = 32


def reach(model: torch.nn.Module, frame: int) -> list[int]:
    """The input frames whose gradient is non-zero for the sum of frame ``frame``'s backbone features."""
    model.eval()
    clips = torch.randn(1, FRAMES, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    features = model.backbone(clips.flatten(0, 1))
    features[frame].sum().backward()
    per_frame = clips.grad[0].abs().flatten(1).sum(1)
    return [t for t in range(FRAMES) if per_frame[t] > 0]


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, backbone="resnet18", num_classes=4, num_segments=FRAMES, width_mult=0.25).double()


def test_tsn_sees_its_frame_and_tsm_eight_frames_either_way():
    assert reach(build("tsn"), 16) == [16]
    assert reach(build("tsm"), 16) == list(range(8, 25))  # 8 blocks, at most one frame each
    assert reach(build("tsm"), 0) == list(range(0, 9))


def test_tin_sees_the_whole_clip_through_its_offsets_and_sixteen_frames_through_its_taps():
    for name in ("tin", "rtcn"):  # OffsetNet's fully connected layers read every frame's descriptor
        assert reach(build(name), 0) == list(range(FRAMES)), name
    model = build("tin")
    nets = [m for m in model.modules() if isinstance(m, OffsetNet)]
    assert len(nets) == 8
    for net in nets:  # offsets held at +-1.97 whatever the clip (the reversed groups mirror them)
        torch.nn.init.zeros_(net.fc2.weight)
        torch.nn.init.constant_(net.fc2.bias, 5.0)
        assert 1.9 < float(net.to_offsets(torch.tensor(5.0))) < 2
    assert reach(model, 0) == list(range(0, 17))  # taps up to 2 frames away, 8 blocks
    model = build("tin")  # held at their initial +-0.5: taps one frame away, as TSM's shift
    for net in (m for m in model.modules() if isinstance(m, OffsetNet)):
        torch.nn.init.zeros_(net.fc2.weight)
    assert reach(model, 0) == list(range(0, 9))


def test_tadaconv_starts_frame_by_frame_and_sees_the_whole_clip_once_calibrated():
    for name in ("tada", "tadav2"):
        model = build(name)
        assert reach(model, 0) == [0], name  # the calibration starts as the identity
        torch.manual_seed(1)
        with torch.no_grad():  # what training does first: the zero-initialised parameters move
            for p in model.parameters():
                if not p.any():
                    p.normal_(0, 0.01)
        assert reach(model, 0) == list(range(FRAMES)), name  # global temporal context in the calibration
