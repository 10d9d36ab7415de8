"""tinlab/models/checkpoints.py: every published layout loads strictly into the matching model, every
tensor lands where its key says (a bijection), round trips are bit-exact, and bad files are refused
clearly. The layouts are facts built from the official code (checkpoint_formats/*.json: every key and
shape of ResNet-50, 8 frames, 174 classes); no network, no official code."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import tinlab
from tinlab.__main__ import main
from tinlab.errors import CheckpointError
from tinlab.models.checkpoints import FORMATS, export_state, save_as

HERE = Path(__file__).parent / "checkpoint_formats"
MODEL_OF = {"tsm-official": "tsm", "tin-official": "tin", "tada-official": "tada", "mmaction2-tsm": "tsm",
            "mmaction2-tin": "tin"}
R50 = dict(backbone="resnet50", num_classes=174, num_segments=8)


def published(fmt: str, tmp_path: Path, edit=None) -> tuple[Path, dict[str, torch.Tensor]]:
    """A checkpoint file in ``fmt``'s container with random values in every key and shape of the layout
    (integers for num_batches_tracked); ``edit(state)`` changes the state first."""
    spec = json.loads((HERE / f"{fmt}.json").read_text())
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.randint(0, 1000, shape, generator=gen) if k.endswith("num_batches_tracked")
                 else torch.randn(shape, generator=gen)) for k, shape in spec["state_dict"].items()}
    if edit is not None:
        edit(state)
    inner = next(k for k, v in spec["container"].items() if "state dict" in str(v))
    container = {k: (3 if v == "int" else "resnet50" if v == "str" else 0.5 if v == "float" else {})
                 for k, v in spec["container"].items() if k != inner}
    path = tmp_path / f"{fmt}.pth"
    torch.save({**container, inner: state}, path)
    return path, state


@pytest.mark.parametrize("fmt", sorted(MODEL_OF))
def test_every_published_layout_loads_strictly_and_each_tensor_lands_where_its_key_says(fmt, tmp_path):
    path, state = published(fmt, tmp_path)
    model = tinlab.create_model(MODEL_OF[fmt], **R50, checkpoint=path)
    exported = export_state(model, fmt)  # the inverse map: where each model tensor came from
    assert set(exported) == set(state)
    for key, value in exported.items():
        assert torch.equal(value, state[key].to(value.dtype)), key
    info = tinlab.load_checkpoint(tinlab.create_model(MODEL_OF[fmt], **R50), path)
    assert info["format"] == fmt and info["tensors"] == len(state)


# Hand-written pairs from the layouts (checkpoint_formats/*.json and the official code): the bijection
# check above cannot see two same-shaped tensors swapped (bn1 <-> bn2 in a bottleneck), these can.
PAIRS = {
    "tsm-official": [("backbone.layer1.0.conv1.weight", "module.base_model.layer1.0.conv1.net.weight"),
                     ("backbone.layer1.0.bn1.weight", "module.base_model.layer1.0.bn1.weight"),
                     ("backbone.layer1.0.bn2.bias", "module.base_model.layer1.0.bn2.bias"),
                     ("backbone.layer3.2.downsample.1.weight", None), ("fc.weight", "module.new_fc.weight")],
    "tin-official": [("backbone.layer2.1.conv1.weight", "module.base_model.layer2.1.conv1.net2.weight"),
                     ("backbone.layer2.1.temporal.offset_net.fc1.weight",
                      "module.base_model.layer2.1.conv1.net1.biasnet.net.fc.weight"),
                     ("backbone.layer2.1.temporal.offset_net.fc2.bias",
                      "module.base_model.layer2.1.conv1.net1.biasnet.net.lastlayer.bias"),
                     ("backbone.layer2.1.temporal.weight_net.conv.weight",
                      "module.base_model.layer2.1.conv1.net1.weightnet.net.lastlayer.weight"),
                     ("backbone.layer2.0.downsample.1.running_var", "module.base_model.layer2.0.downsample.1.running_var")],
    "tada-official": [("backbone.conv1.weight", "backbone.conv1.a.weight"), ("backbone.bn1.bias", "backbone.conv1.a_bn.bias"),
                      ("backbone.layer1.0.bn1.weight", "backbone.conv2.res_1.conv_branch.a_bn.weight"),
                      ("backbone.layer1.0.bn2.weight", "backbone.conv2.res_1.conv_branch.b_bn.weight"),
                      ("backbone.layer1.0.bn2.temporal.weight", "backbone.conv2.res_1.conv_branch.b_avgpool_bn.weight"),
                      ("backbone.layer1.0.bn3.weight", "backbone.conv2.res_1.conv_branch.c_bn.weight"),
                      ("backbone.layer4.2.conv2.route.a.weight", "backbone.conv5.res_3.conv_branch.b_rf.a.weight"),
                      ("backbone.layer4.2.conv2.route.g.bias", "backbone.conv5.res_3.conv_branch.b_rf.g.bias"),
                      ("backbone.layer2.0.downsample.0.weight", "backbone.conv3.res_1.short_cut.weight"),
                      ("backbone.layer2.0.downsample.1.weight", "backbone.conv3.res_1.short_cut_bn.weight"),
                      ("fc.bias", "head.out.bias")],
    "mmaction2-tsm": [("backbone.conv1.weight", "backbone.conv1.conv.weight"), ("backbone.bn1.weight", "backbone.conv1.bn.weight"),
                      ("backbone.layer1.0.conv1.weight", "backbone.layer1.0.conv1.conv.net.weight"),
                      ("backbone.layer1.0.bn1.weight", "backbone.layer1.0.conv1.bn.weight"),
                      ("backbone.layer1.0.bn2.weight", "backbone.layer1.0.conv2.bn.weight"),
                      ("backbone.layer1.0.downsample.1.weight", "backbone.layer1.0.downsample.bn.weight"),
                      ("fc.weight", "cls_head.fc_cls.weight")],
    "mmaction2-tin": [("backbone.layer1.0.conv1.weight", "backbone.layer1.0.conv1.conv.net2.weight"),
                      ("backbone.layer1.0.temporal.offset_net.fc2.weight",
                       "backbone.layer1.0.conv1.conv.net1.offset_net.fc2.weight"),
                      ("backbone.layer1.0.temporal.weight_net.conv.bias", "backbone.layer1.0.conv1.conv.net1.weight_net.conv.bias")],
}


@pytest.mark.parametrize("fmt", sorted(PAIRS))
def test_the_layouts_map_these_keys_as_written(fmt):
    model = tinlab.create_model(MODEL_OF[fmt], **R50)
    for ours, theirs in PAIRS[fmt]:
        expected = theirs or "module.base_model." + ours[len("backbone."):]
        assert FORMATS[fmt].key(model, ours) == expected, ours


def test_a_tinlab_file_records_its_network(tmp_path):
    """Weights of a TSN fit a TSM (no parameters of its own), a TIN's of one boundary the other's: the
    architecture a tinlab file records keeps them apart."""
    small = dict(backbone="resnet18", num_classes=5, num_segments=4, width_mult=0.25)
    path = save_as(tinlab.create_model("tsn", **small), tmp_path / "tsn.pt")
    with pytest.raises(CheckpointError, match="holds another network: name: file 'tsn', model 'tsm'"):
        tinlab.create_model("tsm", **small, checkpoint=path)
    path = save_as(tinlab.create_model("tin", **small, boundary="clamp"), tmp_path / "tin.pt")
    with pytest.raises(CheckpointError, match="holds another network: options"):
        tinlab.create_model("tin", **small, checkpoint=path)
    tinlab.create_model("tin", **small, boundary="clamp", checkpoint=path)


@pytest.mark.parametrize("fmt", sorted(MODEL_OF) + ["tinlab", "tsn-official"])
def test_round_trip_tinlab_format_tinlab_is_bit_exact(fmt, tmp_path):
    name = MODEL_OF.get(fmt, "tsn" if fmt == "tsn-official" else "tin")
    torch.manual_seed(1)
    small = dict(backbone="resnet50", num_classes=7, num_segments=4, width_mult=0.25)
    model = tinlab.create_model(name, **small)
    for p in model.state_dict().values():
        p.copy_(torch.randn(p.shape) if p.is_floating_point() else p)  # every tensor distinct
    path = save_as(model, tmp_path / "x.pt", fmt)
    again = tinlab.create_model(name, **small, checkpoint=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_resnet101_tsm_official_layout_keeps_unshifted_blocks_plain(tmp_path):
    """The layout is derived from the model: ResNet-101 TSM shifts every other block, so only those wrap
    conv1 as conv1.net."""
    model = tinlab.create_model("tsm", backbone="resnet101", num_classes=10)
    keys = set(export_state(model, "tsm-official"))
    assert "module.base_model.layer3.0.conv1.net.weight" in keys and "module.base_model.layer3.1.conv1.weight" in keys
    path = save_as(model, tmp_path / "tsm101.pth", "tsm-official")
    tinlab.create_model("tsm", backbone="resnet101", num_classes=10, checkpoint=path)


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("module.base_model.layer2.1.bn2.running_var"), r"1 missing: \['module.base_model.layer2.1.bn2"),
    (lambda s: s.update({"module.base_model.extra.weight": torch.ones(1)}), r"1 unexpected: \['module.base_model.extra"),
    (lambda s: s.update({"module.base_model.layer1.0.conv2.weight": torch.ones(64, 64, 1, 1)}),
     r"layer1.0.conv2.weight: \(64, 64, 1, 1\) vs model \(64, 64, 3, 3\)"),
    (lambda s: s.update({"module.new_fc.weight": torch.ones(10, 2048), "module.new_fc.bias": torch.ones(10)}),
     r"\(the class count differs\)"),
])
def test_a_bad_file_is_refused_naming_file_format_and_keys(tmp_path, damage, message):
    path, _ = published("tsm-official", tmp_path, damage)
    with pytest.raises(CheckpointError, match=message) as e:
        tinlab.create_model("tsm", **R50, checkpoint=path)
    assert str(path) in str(e.value) and "tsm-official" in str(e.value)


def test_wrong_model_and_unknown_layouts_are_refused(tmp_path):
    path, _ = published("tin-official", tmp_path)
    with pytest.raises(CheckpointError, match="a tin-official checkpoint holds a tin/rtcn network; the model is 'tsm'"):
        tinlab.create_model("tsm", **R50, checkpoint=path)
    tinlab.create_model("rtcn", **R50, checkpoint=path)  # r-TCN has TIN's parameters: it loads
    odd = tmp_path / "odd.pth"
    torch.save({"state_dict": {"encoder.blocks.0.weight": torch.ones(3)}}, odd)
    with pytest.raises(CheckpointError, match=r"odd.pth: unknown checkpoint layout \(keys such as \['encoder"):
        tinlab.create_model("tsm", **R50, checkpoint=odd)
    tin_t16 = tinlab.create_model("tin", backbone="resnet50", num_classes=174, num_segments=16)
    with pytest.raises(CheckpointError, match=r"biasnet.net.fc.weight: \(8, 8\) vs model \(16, 16\)"):
        tinlab.load_checkpoint(tin_t16, path)  # TIN's OffsetNet is built for its number of frames


def test_convert_cli_infers_the_network_and_round_trips(tmp_path, capsys):
    path, state = published("tin-official", tmp_path)
    assert main(["convert", str(path), str(tmp_path / "tin.pt")]) == 0
    assert "(tin-official, tin resnet50, 174 classes)" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "tin.pt"), str(tmp_path / "mm.pth"), "--to", "mmaction2-tin"]) == 0
    assert main(["convert", str(tmp_path / "mm.pth"), str(tmp_path / "back.pth"), "--to", "tin-official"]) == 0
    back = torch.load(tmp_path / "back.pth", weights_only=True)["state_dict"]
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    assert main(["convert", str(tmp_path / "tin.pt"), str(tmp_path / "no.pth"), "--to", "tsm-official"]) == 2
    assert "cannot be written as tsm-official" in capsys.readouterr().err


def test_formats_cover_the_shared_facts():
    assert set(MODEL_OF) | {"tinlab", "tsn-official"} == set(FORMATS)
    assert {p.stem for p in HERE.glob("*.json")} == set(MODEL_OF)


def test_tada_with_a_layernorm_routing_has_no_official_layout_and_says_so(tmp_path):
    path, _ = published("tada-official", tmp_path)
    ln = tinlab.create_model("tada", **R50, route_norm="layernorm")
    with pytest.raises(CheckpointError, match=r"route\.norm\.weight.*tada-official layout does not have"):
        tinlab.load_checkpoint(ln, path)
    with pytest.raises(CheckpointError, match=r"route\.norm\.weight.*tada-official layout does not have"):
        export_state(ln, "tada-official")


def test_tadav2_round_trips_through_the_tinlab_format(tmp_path):
    """No official TAdaConvV2 ResNet checkpoint exists (the official V2 networks are TAdaConvNeXtV2 and
    TAdaFormer): tadav2 is saved in tinlab's format, and an official layout refuses it."""
    small = dict(backbone="resnet18", num_classes=5, num_segments=4, width_mult=0.25)
    model = tinlab.create_model("tadav2", **small)
    path = save_as(model, tmp_path / "v2.pth", "tinlab")
    again = tinlab.create_model("tadav2", **small, checkpoint=path)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(CheckpointError, match=r"cannot be written as tada-official \(holds tada\)"):
        export_state(model, "tada-official")


@pytest.mark.parametrize("change, message", [
    ({"name": "foo"}, "key 'name' = 'foo'"),
    ({"options": {"shift_div": "two"}}, "options.shift_div' must be int"),
    ({"width_mult": -1}, "width_mult' = -1"),
    ({"extra": 1}, "unknown key(s) ['extra']"),
    ({"num_segments": 0}, "num_segments' = 0"),
    ({"num_classes": 0}, "num_classes = 0"),
    ({"options": {"shift_div": 1}}, "TSM needs shift_div >= 2"),
])
def test_convert_refuses_a_bad_recorded_architecture_naming_the_file_and_key(tmp_path, capsys, change, message):
    """A tinlab file records the network it holds; every field is checked as a run config's would be."""
    small = dict(backbone="resnet18", num_classes=5, num_segments=4, width_mult=0.25, small_stem=True)
    path = save_as(tinlab.create_model("tsm", **small), tmp_path / "tsm.pt", "tinlab")
    blob = torch.load(path, weights_only=True)
    blob["tinlab"]["arch"].update(change) if "tinlab" in blob else blob["arch"].update(change)
    torch.save(blob, path)
    assert main(["convert", str(path), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err, err
    assert not (tmp_path / "out.pt").exists()


def test_convert_of_a_file_without_a_classifier_says_so(tmp_path, capsys):
    path, state = published("tsm-official", tmp_path)
    trunk = {k: v for k, v in state.items() if "fc" not in k}
    torch.save({"state_dict": trunk}, tmp_path / "trunk.pth")
    assert main(["convert", str(tmp_path / "trunk.pth"), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert "no classifier weight" in err and "trunk.pth" in err and "Traceback" not in err, err
