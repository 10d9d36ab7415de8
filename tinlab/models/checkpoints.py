"""Published checkpoints in, and out: the official TSM, TIN and TAdaConv releases, the MMAction2 model
zoo, and tinlab's own, detected from the file and loaded strictly.

A format is a renaming (and reshaping) of tinlab's parameter names, written once as a function of the
model (:data:`FORMATS`): for every tensor of the model, the key and shape it has in that format. Loading
walks the model's state_dict through that map, so every tinlab tensor receives exactly one checkpoint
tensor, every checkpoint tensor must be used (a bijection), and each shape is checked; it works for any
depth, width, frame and class count, because the map is derived from the model, not from a key list.

======================  =================================================================================
format                  layout (``checkpoint-formats/*.json`` of the shared facts)
======================  =================================================================================
``tsm-official``        mit-han-lab/temporal-shift-module: ``state_dict`` of an nn.DataParallel
                        ``module.base_model.*`` / ``module.new_fc.*``; shifted blocks' conv1 as ``conv1.net``
``tsn-official``        the same code without shift (no ``conv1.net``)
``tin-official``        deepcs233/TIN: as TSM; TIN's nets as ``conv1.net1.{biasnet,weightnet}.net.*``,
                        the 1x1 conv as ``conv1.net2``
``tada-official``       alibaba-mmai-research/TAdaConv: ``model_state`` of ``backbone.conv1..conv5`` with
                        ``res_<i>.conv_branch.{a,b,b_rf,c}`` (5-D convs, 6-D TAda weight), ``head.out``
``mmaction2-tsm``,      mmengine ``state_dict``: ``backbone.*`` in mmcv ConvModule layout
``mmaction2-tin``       (``convK.conv`` / ``convK.bn``), ``cls_head.fc_cls``
``tinlab``              a tinlab checkpoint (``model`` of a run's checkpoint, or :func:`save_as`'s file), or
                        a bare tinlab state_dict
======================  =================================================================================

Files are read with ``torch.load(weights_only=True)`` (published checkpoints hold only tensors,
numbers and strings). Example (reads a file)::

    model = tinlab.create_model("tsm", backbone="resnet50", num_classes=174, num_segments=8,
                                checkpoint="TSM_something_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth")
    info = tinlab.load_checkpoint(model, "ckpt.pth.tar")    # {"format": "tsm-official", ...}
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from ..utils.io import atomic_save, load_tensors

__all__ = ["FORMATS", "detect_format", "export_state", "import_state", "infer_architecture", "load_checkpoint",
           "save_as"]

_BLOCK = re.compile(r"^backbone\.layer(\d+)\.(\d+)\.(.+)$")


def _temporal_kind(model: nn.Module, key: str) -> str | None:
    """The kind of temporal op in the block that ``key`` belongs to: "tsm", "tin" or None."""
    m = _BLOCK.match(key)
    if m is None:
        return None
    block = model.backbone.get_submodule(f"layer{m[1]}.{m[2]}")
    name = type(getattr(block, "temporal", None)).__name__
    return {"TemporalShift": "tsm", "TemporalInterlace": "tin", "RegularizedTCN": "tin"}.get(name)


def _official_tsn(model: nn.Module, key: str, wrap: dict[str, str]) -> str:
    """mit-han-lab / deepcs233 layout: module.base_model.<torchvision>, module.new_fc; ``wrap`` renames
    the shifted/interlaced blocks' conv1 and temporal parameters."""
    if key.startswith("fc."):
        return "module.new_fc." + key[3:]
    rest = key[len("backbone."):]
    kind = _temporal_kind(model, key)
    if kind is not None:
        m = _BLOCK.match(key)
        for ours, theirs in wrap.items():
            if m[3].startswith(ours):
                rest = f"layer{m[1]}.{m[2]}.{theirs}{m[3][len(ours):]}"
                break
    return "module.base_model." + rest


def _tsm_official(model: nn.Module, key: str) -> str:
    return _official_tsn(model, key, {"conv1.": "conv1.net."})


def _tin_official(model: nn.Module, key: str) -> str:
    return _official_tsn(model, key, {
        "conv1.": "conv1.net2.", "temporal.offset_net.conv.": "conv1.net1.biasnet.net.conv.",
        "temporal.offset_net.fc1.": "conv1.net1.biasnet.net.fc.",
        "temporal.offset_net.fc2.": "conv1.net1.biasnet.net.lastlayer.",
        "temporal.weight_net.conv.": "conv1.net1.weightnet.net.lastlayer."})


def _mmaction2(model: nn.Module, key: str) -> str:
    """mmaction2 ResNetTSM / ResNetTIN: mmcv ConvModule (convK.conv, convK.bn), cls_head.fc_cls."""
    if key.startswith("fc."):
        return "cls_head.fc_cls." + key[3:]
    stem = re.match(r"^backbone\.(conv1|bn1)\.(.+)$", key)
    if stem:
        return f"backbone.conv1.{'conv' if stem[1] == 'conv1' else 'bn'}.{stem[2]}"
    m = _BLOCK.match(key)
    if m is None:
        raise KeyError(key)
    prefix, rest = f"backbone.layer{m[1]}.{m[2]}.", m[3]
    kind = _temporal_kind(model, key)
    if rest.startswith("temporal."):  # TIN's nets keep their names inside conv1.conv.net1
        return prefix + "conv1.conv.net1." + rest[len("temporal."):]
    conv = re.match(r"^(conv|bn)(\d)\.(.+)$", rest)
    if conv:
        inner = "conv" if conv[1] == "conv" else "bn"
        if inner == "conv" and conv[2] == "1" and kind is not None:
            inner = "conv.net" if kind == "tsm" else "conv.net2"
        return f"{prefix}conv{conv[2]}.{inner}.{conv[3]}"
    down = re.match(r"^downsample\.([01])\.(.+)$", rest)
    if down:
        return f"{prefix}downsample.{'conv' if down[1] == '0' else 'bn'}.{down[2]}"
    raise KeyError(key)


_TADA_BLOCK = {"conv1.": "conv_branch.a.", "bn1.": "conv_branch.a_bn.", "conv2.route.": "conv_branch.b_rf.",
               "conv2.": "conv_branch.b.", "bn2.temporal.": "conv_branch.b_avgpool_bn.", "bn2.": "conv_branch.b_bn.",
               "conv3.": "conv_branch.c.", "bn3.": "conv_branch.c_bn.", "downsample.0.": "short_cut.",
               "downsample.1.": "short_cut_bn."}


def _tada_official(model: nn.Module, key: str) -> str:
    """alibaba-mmai-research/TAdaConv ResNet3D: stem conv1.a/a_bn, stages conv2..conv5, res_<i+1>."""
    if key.startswith("fc."):
        return "head.out." + key[3:]
    stem = re.match(r"^backbone\.(conv1|bn1)\.(.+)$", key)
    if stem:
        return f"backbone.conv1.{'a' if stem[1] == 'conv1' else 'a_bn'}.{stem[2]}"
    m = _BLOCK.match(key)
    if m is None or ".route.norm." in key:  # route_norm: layernorm is tinlab's ablation, not an official layer
        raise KeyError(key)
    for ours, theirs in _TADA_BLOCK.items():
        if m[3].startswith(ours):
            return f"backbone.conv{int(m[1]) + 1}.res_{int(m[2]) + 1}.{theirs}{m[3][len(ours):]}"
    raise KeyError(key)


@dataclass(frozen=True)
class Format:
    """A checkpoint layout: ``key(model, tinlab_key) -> its key``; ``models`` it can hold; the container
    key of the state dict; how to recognise its keys."""
    name: str
    key: Callable[[nn.Module, str], str]
    models: tuple[str, ...]
    container: str | None
    signature: Callable[[set[str]], bool]


def _has(pattern: str) -> Callable[[set[str]], bool]:
    regex = re.compile(pattern)
    return lambda keys: any(regex.search(k) for k in keys)


FORMATS: dict[str, Format] = {f.name: f for f in [
    Format("tin-official", _tin_official, ("tin", "rtcn"), "state_dict", _has(r"^module\.base_model\..*\.net1\.biasnet\.")),
    Format("tsm-official", _tsm_official, ("tsm",), "state_dict", _has(r"^module\.base_model\..*\.conv1\.net\.weight$")),
    Format("tsn-official", _tsm_official, ("tsn",), "state_dict", _has(r"^module\.base_model\.layer1\.0\.conv1\.weight$")),
    Format("tada-official", _tada_official, ("tada",), "model_state", _has(r"^backbone\.conv2\.res_1\.conv_branch\.b_rf\.")),
    Format("mmaction2-tin", _mmaction2, ("tin", "rtcn"), "state_dict", _has(r"^backbone\..*\.conv1\.conv\.net1\.offset_net\.")),
    Format("mmaction2-tsm", _mmaction2, ("tsm",), "state_dict", _has(r"^backbone\..*\.conv1\.conv\.net\.weight$")),
    Format("tinlab", lambda model, key: key, (), "model", _has(r"^backbone\.conv1\.weight$")),
]}


def _state_dict_of(obj: Any, path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(the state dict, the rest of the container) of a loaded checkpoint file."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a checkpoint (a dict), got {type(obj).__name__}")
    for container in ("state_dict", "model_state", "model"):
        if isinstance(obj.get(container), dict):
            return obj[container], {k: v for k, v in obj.items() if k != container}
    return obj, {}


def detect_format(state: dict[str, Tensor], where: str = "checkpoint") -> str:
    """The format of a state dict, from its keys (DataParallel's ``module.`` kept); unknown layouts are a
    :class:`~tinlab.errors.CheckpointError` naming a few keys."""
    keys = set(state)
    for fmt in FORMATS.values():
        if fmt.signature(keys):
            return fmt.name
    sample = sorted(keys)[:5]
    raise CheckpointError(f"{where}: unknown checkpoint layout (keys such as {sample}); tinlab reads "
                          f"{', '.join(FORMATS)} (docs/library.md: 'Checkpoints')")


def _fit(tensor: Tensor, shape: torch.Size) -> Tensor | None:
    """``tensor`` reshaped to ``shape`` when they differ only by dimensions of size 1 (5-D/6-D convs)."""
    if tensor.shape == shape:
        return tensor
    if [d for d in tensor.shape if d != 1] == [d for d in shape if d != 1]:
        return tensor.reshape(shape)
    return None


def import_state(model: nn.Module, state: dict[str, Tensor], fmt: str, where: str = "checkpoint") -> dict[str, Tensor]:
    """The model's state dict built from ``state`` in format ``fmt``: strict (every tensor of both sides
    used once) and shape-checked; errors name ``where``, the format and up to 10 keys."""
    spec = FORMATS[fmt]
    name = getattr(model, "name", "")
    if spec.models and name and name not in spec.models:
        raise CheckpointError(f"{where}: a {fmt} checkpoint holds a {'/'.join(spec.models)} network; the model "
                              f"is {name!r}")
    own, out, wrong = model.state_dict(), {}, []
    mapping = {}
    for key in own:
        try:
            mapping[key] = spec.key(model, key)
        except KeyError:
            raise CheckpointError(f"{where}: the {name or 'given'} model has {key!r}, which the {fmt} layout "
                                  f"does not have") from None
    missing = [theirs for theirs in mapping.values() if theirs not in state]
    unexpected = sorted(set(state) - set(mapping.values()))
    if missing or unexpected:
        parts = ([f"{len(missing)} missing: {missing[:10]}"] if missing else []) + (
            [f"{len(unexpected)} unexpected: {unexpected[:10]}"] if unexpected else [])
        raise CheckpointError(f"{where} (format {fmt}) does not match the {name or 'given'} model "
                              f"({model.backbone.arch}, {getattr(model, 'num_segments', '?')} frames): "
                              + "; ".join(parts))
    for ours, theirs in mapping.items():
        fitted = _fit(state[theirs], own[ours].shape)
        if fitted is None:
            wrong.append(f"{theirs}: {tuple(state[theirs].shape)} vs model {tuple(own[ours].shape)}")
        else:
            out[ours] = fitted
    if wrong:
        fc = [w for w in wrong if "fc" in w.split(":")[0] or "head.out" in w or "fc_cls" in w]
        hint = " (the class count differs)" if fc and len(fc) == len(wrong) else ""
        raise CheckpointError(f"{where} (format {fmt}): {len(wrong)} shape(s) do not match{hint}: {wrong[:10]}")
    return out


def export_state(model: nn.Module, fmt: str) -> dict[str, Tensor]:
    """The model's tensors under the names and shapes of format ``fmt`` (the inverse of import_state)."""
    spec = FORMATS[fmt]
    if spec.models and model.name not in spec.models:
        raise CheckpointError(f"a {model.name!r} model cannot be written as {fmt} (holds {'/'.join(spec.models)})")
    if fmt == "tada-official" and not hasattr(model.backbone.layer1[0], "conv3"):
        raise CheckpointError(f"the official TAda2D layout is defined for bottleneck ResNets, not {model.backbone.arch}")
    shapes = _official_shapes(fmt)
    out = {}
    for key, tensor in model.state_dict().items():
        try:
            theirs = spec.key(model, key)
        except KeyError:
            raise CheckpointError(f"the {model.name} model has {key!r}, which the {fmt} layout does not have "
                                  f"(options {getattr(model, 'options', {})})") from None
        out[theirs] = tensor.reshape(shapes(theirs, tensor))
    return out


def _official_shapes(fmt: str) -> Callable[[str, Tensor], tuple[int, ...]]:
    """Shapes in the format: TAdaConv's convs are 5-D (Conv3d) and its TAda weight 6-D; others as tinlab's."""
    if fmt != "tada-official":
        return lambda key, t: tuple(t.shape)

    def shape(key: str, t: Tensor) -> tuple[int, ...]:
        if key.endswith("conv_branch.b.weight"):
            return (1, 1, *t.shape)
        if t.dim() == 4:  # Conv2d -> Conv3d with a temporal kernel of 1
            return (t.shape[0], t.shape[1], 1, t.shape[2], t.shape[3])
        if t.dim() == 3 and ".b_rf." in key:  # Conv1d over time -> Conv3d (k, 1, 1)
            return (*t.shape, 1, 1)
        return tuple(t.shape)
    return shape


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a whole-recogniser checkpoint of any supported format into ``model``, strictly. Returns what
    was detected: ``{"file", "format", "tensors", "epoch"}``."""
    path = Path(path)
    state, rest = _state_dict_of(load_tensors(path), path)
    fmt = detect_format(state, str(path))
    if isinstance(rest.get("arch"), dict):  # a tinlab file says which network it holds: hold the model to it
        _same_network(rest["arch"], model, path)
    model.load_state_dict(import_state(model, state, fmt, str(path)))
    return {"file": str(path), "format": fmt, "tensors": len(state), "epoch": rest.get("epoch"),
            "config_hash": rest.get("config_hash"), "code_versions": rest.get("code_versions")}


def infer_architecture(state: dict[str, Tensor], fmt: str, where: str = "checkpoint") -> dict[str, Any]:
    """create_model arguments that fit a checkpoint: model, depth, width, classes, and the frames TIN's
    OffsetNet was built for (others: 8, not stored in the weights). A checkpoint without a classifier or
    a stem is a CheckpointError naming ``where``."""
    spec = FORMATS[fmt]
    model = spec.models[0] if spec.models else None
    by_stage: dict[int, set[int]] = {}
    for key in state:
        m = re.search(r"layer(\d+)\.(\d+)\.", key) or re.search(r"\.conv(\d)\.res_(\d+)\.", key)
        if m:
            stage = int(m[1]) - (1 if "res_" in m[0] else 0)
            by_stage.setdefault(stage, set()).add(int(m[2]))
    blocks = tuple(len(by_stage.get(s, ())) for s in (1, 2, 3, 4))
    bottleneck = any(".conv3." in k or "conv_branch.c." in k or "conv3.conv" in k for k in state)
    from .archs import ARCHS

    arch = next((name for name, (kind, layers) in ARCHS.items()
                 if layers == blocks and (kind == "bottleneck") == bottleneck), None)
    if arch is None:
        raise CheckpointError(f"a {fmt} checkpoint with {blocks} blocks per stage: not a ResNet tinlab builds")
    fc = next((v for k, v in state.items() if re.search(r"(new_fc|fc_cls|head\.out|^fc)\.weight$", k)), None)
    stem = next((v for k, v in state.items() if re.search(r"conv1(\.conv|\.a)?\.weight$", k) and "layer" not in k
                 and "res_" not in k), None)
    for what, found, example in (("classifier", fc, "fc.weight / new_fc.weight / cls_head.fc_cls.weight"),
                                 ("stem convolution", stem, "conv1.weight")):
        if found is None:
            raise CheckpointError(f"{where} ({fmt}): no {what} weight ({example}): a backbone-only file? tinlab "
                                  f"converts whole recognisers; load a trunk with pretrained= instead")
    fc1 = next((v for k, v in state.items() if re.search(r"(biasnet\.net\.fc|offset_net\.fc1)\.weight$", k)), None)
    return {"name": model, "backbone": arch, "width_mult": stem.shape[0] / 64, "num_classes": fc.shape[0],
            "num_segments": fc1.shape[0] if fc1 is not None else 8}


ARCH_KEYS = ("name", "backbone", "width_mult", "small_stem", "num_classes", "num_segments", "options")


def _build_recorded(arch: dict[str, Any], path: Path) -> nn.Module:
    """The model a tinlab file's recorded architecture describes, every field checked as a run config's
    (name, backbone, width, frames, the module's options and their types, the module's own rules): a bad
    field is a CheckpointError naming the file and the key."""
    from ..engine.config import ConfigError, config_from_dict
    from . import check_buildable, create_model

    where = f"{path}: recorded architecture"
    unknown = sorted(set(arch) - set(ARCH_KEYS))
    if unknown:
        raise CheckpointError(f"{where}: unknown key(s) {unknown} (expected {list(ARCH_KEYS)})")
    classes = arch.get("num_classes")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise CheckpointError(f"{where}: num_classes = {classes!r} is not valid; expected an integer >= 1")
    options = arch.get("options") or {}
    if not isinstance(options, dict):
        raise CheckpointError(f"{where}: options = {options!r} is not a mapping")
    if not isinstance(arch.get("name"), str):
        raise CheckpointError(f"{where}: name = {arch.get('name')!r} is not a model name")
    try:
        cfg = config_from_dict({"model": {k: arch[k] for k in ("name", "backbone", "width_mult", "small_stem")
                                          if k in arch} | {"options": dict(options)},
                                "data": {"num_segments": arch.get("num_segments", 8)}}, where)
    except ConfigError as e:
        raise CheckpointError(str(e).replace("key 'model.", "key '").replace("key 'data.", "key '")) from None
    m = cfg.model
    try:
        check_buildable(m.name, backbone=m.backbone, num_segments=cfg.data.num_segments, width_mult=m.width_mult,
                        small_stem=m.small_stem, **m.options)
    except ConfigError as e:
        raise CheckpointError(f"{where}: {e}") from None
    return create_model(m.name, backbone=m.backbone, num_classes=classes, num_segments=cfg.data.num_segments,
                        width_mult=m.width_mult, small_stem=m.small_stem, **m.options)


def architecture_of(model: nn.Module) -> dict[str, Any]:
    """create_model arguments that rebuild ``model`` (kept in tinlab-format files written by save_as);
    ``options`` are the module's effective options (its defaults with what was asked)."""
    from ..registry import get_module

    b = model.backbone
    return {"name": model.name, "backbone": b.arch, "width_mult": b.width_mult, "small_stem": b.small_stem,
            "num_classes": model.num_classes, "num_segments": model.num_segments,
            "options": {**get_module(model.name).defaults, **getattr(model, "options", {})}}


def _same_network(recorded: dict[str, Any], model: nn.Module, path: Path) -> None:
    """A tinlab file's recorded network against the model: the same module and options (weights of a
    TSN fit a TSM, and TIN's of one boundary the other's, but they are other networks)."""
    own = architecture_of(model)
    differ = {k: (recorded.get(k), own[k]) for k in ("name", "options", "small_stem") if recorded.get(k) != own[k]}
    if differ:
        detail = "; ".join(f"{k}: file {a!r}, model {b!r}" for k, (a, b) in differ.items())
        raise CheckpointError(f"{path} (format tinlab) holds another network: {detail}")


def save_as(model: nn.Module, path: str | Path, fmt: str = "tinlab", **meta: Any) -> Path:
    """Write ``model`` as a checkpoint of format ``fmt`` (atomically): the layout's own container
    (``state_dict`` / ``model_state`` / ``model``) around the renamed tensors, plus ``meta``; a tinlab
    file also records the architecture, so ``tinlab convert`` can rebuild the model from it."""
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown checkpoint format {fmt!r}; one of {sorted(FORMATS)}")
    spec = FORMATS[fmt]
    container = {"tinlab": {"format": "tinlab-weights", "arch": architecture_of(model), **meta},
                 "tada-official": {"epoch": meta.get("epoch", 0)},
                 "mmaction2-tsm": {"meta": dict(meta)}, "mmaction2-tin": {"meta": dict(meta)}}.get(
        fmt, {"epoch": meta.get("epoch", 0), "arch": model.backbone.arch, "best_prec1": 0.0})
    return atomic_save({**container, spec.container: export_state(model, fmt)}, path)


def model_for(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A model built to fit the checkpoint at ``path`` (architecture inferred from its tensors, or
    recorded in a tinlab file), with the checkpoint loaded; and what load_checkpoint detected."""
    from . import create_model

    path = Path(path)
    state, rest = _state_dict_of(load_tensors(path), path)
    fmt = detect_format(state, str(path))
    if fmt == "tinlab":
        arch = rest.get("arch")
        if not isinstance(arch, dict):
            raise CheckpointError(f"{path}: a tinlab checkpoint without its architecture (a run's checkpoint: "
                                  f"use evaluate --config with the run's config.yaml)")
        model = _build_recorded(arch, path)
    else:
        arch = infer_architecture(state, fmt, str(path))
        model = create_model(arch.pop("name"), **arch)
    model.load_state_dict(import_state(model, state, fmt, str(path)))
    return model, {"file": str(path), "format": fmt, "epoch": rest.get("epoch")}


# ----------------------------------------------------------------------------------------------------
# CLI: ``python -m tinlab convert IN OUT --to tsm-official``

def add_arguments(parser: Any) -> None:
    parser.add_argument("input", help="a checkpoint of any supported format")
    parser.add_argument("output", help="the converted checkpoint (written atomically)")
    parser.add_argument("--to", default="tinlab", choices=[f for f in FORMATS if f != "tsn-official"] + ["tsn-official"],
                        help="target format (default: tinlab)")


def run(args: Any) -> int:
    model, info = model_for(args.input)
    save_as(model, args.output, args.to, converted_from=info["format"])
    print(f"tinlab convert: {args.input} ({info['format']}, {model.name} {model.backbone.arch}, "
          f"{model.num_classes} classes) -> {args.output} ({args.to})")
    return 0
