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


def moved(name: str, move: tuple[str, ...], zero: tuple[str, ...] = ()) -> torch.nn.Module:
    """The model with the zero-initialised parameters named ``*move`` drawn (what training does first) and
    those containing ``zero`` set to 0."""
    model = build(name)
    torch.manual_seed(1)
    with torch.no_grad():
        for key, p in model.named_parameters():
            if any(z in key for z in zero):
                p.zero_()
            elif key.endswith(move) and not p.any():
                p.normal_(0, 0.01)
    return model


def test_tadaconv_starts_frame_by_frame_then_sees_two_frames_a_block_locally_and_the_clip_globally():
    # (calibration's last conv, its global branch) per network; TAdaNorm's temporal term is ``temporal``
    for name, last, glob in (("tada", "route.b.weight", "route.g."), ("tadav2", "rf.b.weight", "attn_out.")):
        # at initialisation the calibration is the identity and TAdaNorm's temporal term zero
        assert reach(build(name), 0) == [0], name
        # the calibration: two kernel-3 temporal convolutions (2 frames a block) and a global branch
        assert reach(moved(name, (last,), (glob,)), 0) == list(range(0, 17)), name
        assert reach(moved(name, (last,)), 0) == list(range(FRAMES)), name
        # TAdaNorm: a 3-frame average of the statistics (1 frame a block)
        assert reach(moved(name, ("temporal.weight", "temporal.bias")), 0) == list(range(0, 9)), name
