"""The one list of what tinlab compares: temporal modules, and the models named after them.

A temporal module is registered once, with its default options, and becomes a model of the same name
(on the same ResNet, with the same head and recipe as the others) in every table, the FLOP count,
the latency measurement, the benchmarks and the plots. Everything that lists models derives from
:func:`list_models`; nothing else holds a list of names.

Two kinds of module, placed by one injection hook each in :class:`tinlab.models.resnet.ResNet`:

* ``op`` (TSM, TIN, r-TCN, TCN): ``factory(channels, num_segments, **options) -> nn.Module`` on
  (N*T, C, H, W), placed before the first conv of the residual branch of every block ("residual
  shift" of the official TSM/TIN code), or where ``placement`` says;
* ``block`` (TAdaConv): ``factory(in_channels, out_channels, num_segments, *, stride, **options) ->
  (conv, norm)`` replacing the block's spatial (strided 3x3) convolution and the BatchNorm after it
  (``norm`` None keeps the BatchNorm).

Registering, in one file of your own (docs/add-your-module.md: "Add your module")::

    import tinlab
    from torch import nn

    @tinlab.register_temporal_op("tdiff", defaults={"fold_div": 8})
    class TemporalDifference(nn.Module):
        def __init__(self, channels, num_segments, *, fold_div=8): ...
        def forward(self, x): ...          # (N*T, C, H, W) -> same shape

loaded by naming the file (or an importable module) in the workflow config, ``plugins:
[path/to/tdiff.py]``, or for the ``tinlab`` commands in ``TINLAB_PLUGINS`` (paths or module names
separated by ``:``); or, from an installed package, an entry point in its ``pyproject.toml``::

    [project.entry-points."tinlab.temporal_ops"]
    tdiff = "my_package.tdiff"             # the module whose decorator registers "tdiff"

This module imports no PyTorch: the workflow reads names and defaults while Snakemake parses, and
the built-in modules' classes are imported only when a model is built (``factory`` given as
``"module:attribute"``).

Example:
    >>> list_models("t*")
    ['tsn', 'tsm', 'tin', 'tcn', 'tada', 'tadav2']
    >>> get_module("tin").defaults["groups"]
    2
"""
from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import ConfigError

__all__ = ["ENTRY_POINT_GROUP", "PLUGINS_ENV", "TemporalModule", "get_module", "list_models", "list_temporal_ops",
           "load_plugins", "register_block_op", "register_temporal_op"]

ENTRY_POINT_GROUP = "tinlab.temporal_ops"
PLUGINS_ENV = "TINLAB_PLUGINS"  # plug-in files or module names, os.pathsep-separated (the workflow sets it)
PLUGIN_HINT = ("a plug-in? name its file or module in the workflow config (plugins: [path/to/my_op.py]) or, "
               f"for tinlab commands, in {PLUGINS_ENV}=path/to/my_op.py, or install it with an entry point "
               f"(docs/add-your-module.md: 'Add your module')")
KINDS = ("none", "op", "block")
# Where an op goes: every block, or (the official TSM rule for ResNet-101 and deeper: a stage of 23 or
# more blocks) every other block of every stage.
PLACEMENTS: dict[str, Callable[[tuple[int, ...], int, int], bool]] = {
    "every_block": lambda layers, stage, block: True,
    "every_other_block_if_deep": lambda layers, stage, block: max(layers) < 23 or block % 2 == 0,
}


@dataclass(frozen=True)
class TemporalModule:
    """A registered temporal module (see the module doc). ``network`` changes the model around it:
    ``stem`` ("torchvision": 7x7 conv, BN, ReLU, max pool; "conv": no max pool), ``stage1_stride``
    (2 where the max pool is gone) and ``head`` ("frames": TSN's fc per frame, then the average;
    "pool": the average over frames, then dropout and fc)."""
    name: str
    kind: str
    factory: Callable[..., Any] | str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    flop_handles: Mapping[str, Callable[..., int]] | str = field(default_factory=dict)
    placement: str = "every_block"
    network: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = "tinlab"

    def build(self) -> Callable[..., Any]:
        """The factory, imported on first use when it was given as ``"module:attribute"``."""
        return _resolve(self.factory) if isinstance(self.factory, str) else self.factory

    def handles(self) -> Mapping[str, Callable[..., int]]:
        """fvcore handles for the custom ops this module's forward pass traces to."""
        return _resolve(self.flop_handles) if isinstance(self.flop_handles, str) else self.flop_handles

    def places(self, layers: tuple[int, ...], stage: int, block: int) -> bool:
        return PLACEMENTS[self.placement](layers, stage, block)


_REGISTRY: dict[str, TemporalModule] = {}
_entry_points_loaded = False
_plugins_loaded: dict[str, str] = {}  # what load_plugins was given -> the file or module it loaded


def _resolve(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _register(name: str, kind: str, factory: Any, defaults: Mapping[str, Any] | None,
              flop_handles: Any, placement: str, network: Mapping[str, Any] | None, description: str) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_]*", name):
        raise ValueError(f"temporal module name {name!r}: use lower-case ASCII letters, digits and '_' (run names "
                         f"join a model and its options with '-')")
    if kind not in KINDS:
        raise ValueError(f"temporal module {name!r}: kind must be one of {KINDS}, got {kind!r}")
    if placement not in PLACEMENTS:
        raise ValueError(f"temporal module {name!r}: placement must be one of {sorted(PLACEMENTS)}")
    source = getattr(factory, "__module__", None) or (factory.partition(":")[0] if isinstance(factory, str) else "tinlab")
    old = _REGISTRY.get(name)
    if old is not None and old.source != source:
        raise ValueError(f"temporal module {name!r} is registered already (by {old.source}); pick another name")
    _REGISTRY[name] = TemporalModule(name, kind, factory, MappingProxyType(dict(defaults or {})), flop_handles or {},
                                     placement, MappingProxyType(dict(network or {})), description, source)


def register_temporal_op(name: str, factory: Any = None, *, defaults: Mapping[str, Any] | None = None,
                         flop_handles: Mapping[str, Callable[..., int]] | str | None = None,
                         placement: str = "every_block", description: str = ""):
    """Register an op placed before the first conv of the residual branch (module doc); use as a
    decorator on the class or factory, or call with ``factory`` given. Its ``defaults`` are the
    options a model gets when none are given (they type-check the configs' ``model.options``);
    ``flop_handles`` count the arithmetic of custom ops its forward pass traces to (fvcore handles,
    ``{"mylib::op": fn(inputs, outputs) -> multiply-adds}``): an op neither fvcore nor a handle counts
    makes :func:`tinlab.measure.cost` raise."""
    def add(target: Any) -> Any:
        _register(name, "op", target, defaults, flop_handles, placement, None,
                  description or (getattr(target, "__doc__", None) or "").strip().split("\n")[0])
        return target
    return add(factory) if factory is not None else add


def register_block_op(name: str, factory: Any = None, *, defaults: Mapping[str, Any] | None = None,
                      flop_handles: Mapping[str, Callable[..., int]] | str | None = None,
                      network: Mapping[str, Any] | None = None, description: str = ""):
    """Register a module that replaces each block's spatial convolution (and the norm after it), as
    TAdaConv does (module doc); decorator or call, as :func:`register_temporal_op`."""
    def add(target: Any) -> Any:
        _register(name, "block", target, defaults, flop_handles, "every_block", network,
                  description or (getattr(target, "__doc__", None) or "").strip().split("\n")[0])
        return target
    return add(factory) if factory is not None else add


def load_plugins(specs: list[str] | tuple[str, ...]) -> list[str]:
    """Import plug-ins, each given as a Python file (``path/to/my_op.py``, relative to the working
    folder) or an importable module name (``my_package.my_op``), once each; their decorators register
    their modules. Returns the files or modules loaded. A file that does not exist, a module that is
    not importable or one that fails while importing is a ConfigError (a ValueError) naming it (and the error)."""
    loaded = []
    for spec in specs:
        spec = str(spec).strip()
        if not spec:
            continue
        is_file = spec.endswith(".py") or os.sep in spec or "/" in spec
        key = os.path.abspath(spec) if is_file else spec
        if key not in _plugins_loaded:
            try:
                if is_file:
                    if not os.path.isfile(key):
                        raise ValueError("no such file")
                    name = "tinlab_plugin_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(key))[0])
                    module_spec = importlib.util.spec_from_file_location(name, key)
                    module = importlib.util.module_from_spec(module_spec)
                    sys.modules[name] = module
                    try:
                        module_spec.loader.exec_module(module)
                    except BaseException:
                        del sys.modules[name]
                        raise
                else:
                    importlib.import_module(spec)
            except ConfigError:
                raise
            except ValueError as e:
                raise ConfigError(f"plug-in {spec!r}: {e}") from None
            except ModuleNotFoundError as e:
                if e.name and spec.split(".")[0] == e.name.split(".")[0]:
                    raise ConfigError(f"plug-in {spec!r}: no module of that name is importable (give a .py file's "
                                     f"path, or install the package)") from None
                raise ConfigError(f"plug-in {spec!r} failed to load: {type(e).__name__}: {e}") from None
            except Exception as e:
                raise ConfigError(f"plug-in {spec!r} failed to load: {type(e).__name__}: {e}") from None
            _plugins_loaded[key] = key
        loaded.append(key)
    return loaded


def _load_entry_points() -> None:
    """Import the plug-ins named in ``TINLAB_PLUGINS`` and the modules that installed packages declare
    under ``tinlab.temporal_ops`` (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    load_plugins(os.environ.get(PLUGINS_ENV, "").split(os.pathsep))  # raises again on every call if broken
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plug-in must not take tinlab down with it
            warnings.warn(f"tinlab: entry point {ep.name} = {ep.value!r} failed to load: {e}", RuntimeWarning)
            continue
        if ep.name not in _REGISTRY:
            warnings.warn(f"tinlab: entry point {ep.name} = {ep.value!r} loaded but registered no module named "
                          f"{ep.name!r}", RuntimeWarning)


def list_models(pattern: str = "*") -> list[str]:
    """Model names matching the shell-style ``pattern`` (``"t*"``, ``"*tcn"``), in registration order:
    ``tsn`` (no temporal module), the built-in modules, then plug-ins."""
    _load_entry_points()
    return [name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern)]


def list_temporal_ops(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Registered temporal modules (models other than ``tsn``), optionally of one ``kind``."""
    return [n for n in list_models(pattern) if _REGISTRY[n].kind != "none" and kind in (None, _REGISTRY[n].kind)]


def get_module(name: str) -> TemporalModule:
    """The registration of model ``name``; an unknown name is a ValueError listing the known ones."""
    _load_entry_points()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {list_models()} ({PLUGIN_HINT})")
    return _REGISTRY[name]


# The built-in modules: the one list of their names, defaults and where their code lives.
_register("tsn", "none", None, {}, None, "every_block", None, "no temporal module: 2D ResNet per frame, averaged")
register_temporal_op("tsm", "tinlab.ops.tsm:TemporalShift", defaults={"shift_div": 8},
                     flop_handles="tinlab.ops.tsm:FLOP_HANDLES", placement="every_other_block_if_deep",
                     description="temporal shift of C/8 channels each way (Lin et al. 2019)")
_TIN_DEFAULTS = {"shift_div": 4, "groups": 2, "reverse": True, "boundary": "zero", "offset_range": 2.0,
                 "attention": True}
register_temporal_op("tin", "tinlab.ops.tin:TemporalInterlace", defaults=_TIN_DEFAULTS,
                     flop_handles="tinlab.ops.tin:FLOP_HANDLES",
                     description="temporal interlacing: learned fractional shifts (Shao et al. 2020)")
register_temporal_op("rtcn", "tinlab.ops.rtcn:RegularizedTCN", defaults=_TIN_DEFAULTS,
                     flop_handles="tinlab.ops.tin:FLOP_HANDLES",
                     description="TIN computed as a regularized temporal convolution")
register_temporal_op("tcn", "tinlab.ops.tcn:TemporalConv", defaults={"shift_div": 4, "kernel_size": 3},
                     description="a free depthwise temporal convolution: the unconstrained control")
# TAdaConv v1 and v2 share the official TAda2D network (conv stem without max pool, stride 2 in stage 1's
# first block, average over frames before the fc), so that they differ only in the operator.
_TADA_NETWORK = {"stem": "conv", "stage1_stride": 2, "head": "pool"}
register_block_op("tada", "tinlab.ops.tada:tada_block", defaults={"route_norm": "batchnorm"},
                  network=_TADA_NETWORK,
                  description="TAdaConv: temporally adaptive 3x3 kernels, the official TAda2D network (Huang et al. 2022)")
register_block_op("tadav2", "tinlab.ops.tadav2:tadav2_block",
                  defaults={"rf_r": 4, "rf_k": (3, 3), "head_dim": 64, "bias": False, "cal_dim": "cin"},
                  network=_TADA_NETWORK,
                  description="TAdaConvV2: TAdaConv with a LayerNorm/self-attention routing function (Huang et al. 2023)")
