"""tinlab.models: the recogniser, the registry, and temporal behaviour of each model."""
from __future__ import annotations

import pytest
import torch

import tinlab

SMALL = dict(backbone="resnet18", num_classes=6, width_mult=0.5, small_stem=True)


@pytest.mark.parametrize("name", tinlab.list_models())
def test_every_model_maps_clips_to_logits_and_trains(name):
    torch.manual_seed(0)
    m = tinlab.create_model(name, num_segments=4, **SMALL)
    x = torch.randn(2, 4, 3, 16, 16)
    logits = m(x)
    assert logits.shape == (2, 6)
    logits.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_registry_and_head_init():
    assert tinlab.list_models() == ["tsn", "tsm", "tin", "rtcn", "tcn", "tada", "tadav2"]
    m = tinlab.create_model("tsn", backbone="resnet50", num_classes=174)
    assert m.fc.bias.abs().max() == 0 and 0.0007 < m.fc.weight.std() < 0.0013
    with pytest.raises(ValueError, match="unknown model 'i3d'"):
        tinlab.create_model("i3d")
    with pytest.raises(TypeError, match=r"model 'tsn' does not take option\(s\) \['groups'\]"):
        tinlab.create_model("tsn", groups=2)


def test_wrong_number_of_frames_is_named():
    m = tinlab.create_model("tin", num_segments=8, **SMALL)
    with pytest.raises(ValueError, match=r"T=8.*\(2, 4, 3, 16, 16\)"):
        m(torch.randn(2, 4, 3, 16, 16))


def test_tsn_ignores_frame_order_and_temporal_models_do_not():
    """TSN cannot tell a clip from its time reversal; every temporal model can."""
    x = torch.randn(2, 8, 3, 16, 16)
    for name in tinlab.list_models():
        torch.manual_seed(0)
        m = tinlab.create_model(name, num_segments=8, **SMALL).eval()
        if name == "tcn":  # identity at init: give it a non-symmetric kernel
            for _, p in m.named_parameters():
                if p.dim() == 3:
                    torch.nn.init.normal_(p)
        if name in ("tada", "tadav2"):  # identity calibration at init: switch the routing on
            for n, p in m.named_parameters():
                if n.endswith(("route.b.weight", "rf.b.weight", ".temporal.weight")):
                    torch.nn.init.normal_(p, 0, 0.5)
        with torch.no_grad():
            a, b = m(x), m(x.flip(1))
        same = torch.allclose(a, b, atol=1e-6, rtol=1e-5)
        assert same == (name == "tsn"), name


def test_tada_starts_as_tsn():
    torch.manual_seed(0)
    tsn = tinlab.create_model("tsn", num_segments=4, **SMALL).eval()
    tada = tinlab.create_model("tada", num_segments=4, **SMALL).eval()
    missing = tada.load_state_dict(tsn.state_dict(), strict=False).missing_keys
    assert missing and all("route" in k or ".temporal." in k for k in missing)
    x = torch.randn(2, 4, 3, 16, 16)
    torch.testing.assert_close(tada(x), tsn(x), atol=1e-5, rtol=1e-4)


def test_interlace_modules_in_network_order():
    m = tinlab.create_model("tin", backbone="resnet50", num_classes=10)
    names = [n for n, _ in m.interlace_modules()]
    assert len(names) == 16 and names[0] == "backbone.layer1.0.temporal" and names[-1].startswith(
        "backbone.layer4.2")
