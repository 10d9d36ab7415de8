"""tinlab.models.resnet: torchvision compatibility, op placement, pretrained loading."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tinlab.errors import CheckpointError
from tinlab.models import ResNet, create_model, load_pretrained
from tinlab.ops import TemporalShift

# torchvision's published parameter counts (ImageNet, 1000 classes): resnet18/34/50/101.
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "resnet101": 44_549_160}


@pytest.mark.parametrize("arch", sorted(TORCHVISION_PARAMS))
def test_parameter_count_equals_torchvision(arch):
    net = ResNet(arch)
    fc = nn.Linear(net.num_features, 1000)
    assert sum(p.numel() for p in net.parameters()) + sum(p.numel() for p in fc.parameters()) == \
        TORCHVISION_PARAMS[arch]


def test_torchvision_key_names():
    keys = set(ResNet("resnet50").state_dict())
    for k in ["conv1.weight", "bn1.running_mean", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
              "layer1.0.downsample.1.num_batches_tracked", "layer3.5.bn2.bias", "layer4.2.bn3.running_var"]:
        assert k in keys
    assert not any(k.startswith("fc.") for k in keys)
    assert set(ResNet("resnet18").state_dict()) >= {"layer1.1.conv2.weight", "layer2.0.downsample.1.weight"}


def test_placement_every_block_and_every_other_for_resnet101_tsm():
    tin = create_model("tin", backbone="resnet50")
    assert sum(1 for n, _ in tin.named_modules() if n.endswith(".temporal")) == 16
    tsm101 = create_model("tsm", backbone="resnet101")
    placed = [n for n, m in tsm101.named_modules() if isinstance(m, TemporalShift)]
    assert len(placed) == 2 + 2 + 12 + 2  # blocks 0, 2, ... of stages with 3, 4, 23, 3 blocks
    assert "backbone.layer3.0.temporal" in placed and "backbone.layer3.1.temporal" not in {
        n for n, _ in tsm101.named_modules()}
    tin101 = create_model("tin", backbone="resnet101")
    assert sum(1 for n, _ in tin101.named_modules() if n.endswith(".temporal")) == 33


def test_tada_is_the_official_tada2d_network():
    """configs/projects/tada/ssv2/tada2d_8f.yaml: stem conv+BN+ReLU without max pool, the first block of
    stage 1 downsamples (its TAda 3x3 and its shortcut), head pooled over time then dropout then fc,
    the official initialisation, 27,022,398 parameters at 174 classes (the official code run on CPU)."""
    torch.manual_seed(0)
    m = create_model("tada", backbone="resnet50", num_classes=174, num_segments=8)
    b = m.backbone
    assert isinstance(b.maxpool, torch.nn.Identity) and b.conv1.stride == (2, 2)
    first = b.layer1[0]
    assert type(first.conv2).__name__ == "TAdaConv2d" and first.conv2.stride == 2
    assert first.downsample[0].stride == (2, 2) and b.layer2[0].conv2.stride == 2
    assert m.head == "pool" and sum(p.numel() for p in m.parameters()) == 27_022_398
    assert b(torch.zeros(8, 3, 224, 224)).shape == (8, 2048)
    conv = b.layer2[0].conv2  # 128 -> 128, 3x3: kaiming-uniform over (1, 1, 128, 128, 3, 3)
    bound = 1 / math.sqrt(128 * 128 * 9)
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert conv.route.g.bias.abs().max() == 0 and conv.route.b.weight.abs().max() == 0
    assert 0.8 < conv.route.g.weight.std() * math.sqrt(128 / 2) < 1.2  # kaiming-normal, fan_out = 128
    assert b.layer2[0].bn2.temporal.weight.abs().max() == 0  # BN_z zero at init
    assert m.fc.weight.abs().max() <= 1 / math.sqrt(2048)  # PyTorch's default Linear init
    m18 = create_model("tada", backbone="resnet18", num_segments=8)
    assert type(m18.backbone.layer3[0].conv1).__name__ == "TAdaConv2d"


def test_width_mult_and_small_stem():
    net = ResNet("resnet18", width_mult=0.25, small_stem=True)
    assert net.layer1[0].conv1.in_channels == 16 and net.num_features == 128
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 128)
    with pytest.raises(ValueError, match="unknown backbone 'resnet42'"):
        ResNet("resnet42")


def _fake_torchvision_checkpoint(tmp_path, arch="resnet18", prefix="", extra=None):
    src = ResNet(arch)
    state = {prefix + k: v for k, v in src.state_dict().items()}
    state[prefix + "fc.weight"] = torch.randn(1000, src.num_features)
    state[prefix + "fc.bias"] = torch.randn(1000)
    state.update(extra or {})
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    return src, path


@pytest.mark.parametrize("model", ["tin", "tsm", "tada", "tadav2"])
def test_load_torchvision_checkpoint_into_temporal_models(tmp_path, model):
    src, path = _fake_torchvision_checkpoint(tmp_path, prefix="module.")
    m = create_model(model, backbone="resnet18", num_classes=7, pretrained=path)
    for k, v in src.state_dict().items():
        assert torch.equal(m.backbone.state_dict()[k], v), k


def test_load_reports_temporal_keys_and_errors_name_file_and_keys(tmp_path):
    _, path = _fake_torchvision_checkpoint(tmp_path)
    info = load_pretrained(create_model("tin", backbone="resnet18").backbone, path)
    assert info["ignored"] == ["fc.bias", "fc.weight"]
    assert all(".temporal." in k for k in info["missing_temporal"]) and info["missing_temporal"]
    with pytest.raises(CheckpointError, match="resnet18.pth.*lacks"):
        load_pretrained(ResNet("resnet50"), path)
    with pytest.raises(CheckpointError, match="shape mismatch.*width_mult=0.5"):
        load_pretrained(ResNet("resnet18", width_mult=0.5), path)
    with pytest.raises(CheckpointError, match="nope.pth does not exist"):
        load_pretrained(ResNet("resnet18"), tmp_path / "nope.pth")
