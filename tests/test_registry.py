"""tinlab/registry.py: one open registry of temporal modules; everything that lists models reads it."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

import tinlab
from tinlab import registry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_builtins_in_registration_order_and_patterns():
    assert tinlab.list_models() == ["tsn", "tsm", "tin", "rtcn", "tcn", "tada", "tadav2"]
    assert tinlab.list_models("t*") == ["tsn", "tsm", "tin", "tcn", "tada", "tadav2"]
    assert tinlab.list_models("*tcn") == ["rtcn", "tcn"] and tinlab.list_temporal_ops(kind="block") == ["tada", "tadav2"]
    assert tinlab.get_module("tin").defaults["groups"] == 2
    with pytest.raises(ValueError, match=r"unknown model 'i3d'; registered: \['tsn'"):
        tinlab.get_module("i3d")


def test_a_decorated_module_is_a_model_with_its_defaults(scratch_registry):
    @tinlab.register_temporal_op("halve", defaults={"scale": 0.5})
    class Halve(nn.Module):
        """Scales the features (a stand-in: no temporal interaction)."""

        def __init__(self, channels, num_segments, *, scale=0.5):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return x * self.scale

    assert tinlab.list_models()[-1] == "halve" and tinlab.get_module("halve").description.startswith("Scales")
    m = tinlab.create_model("halve", backbone="resnet18", num_classes=3, num_segments=2, width_mult=0.25,
                            small_stem=True, scale=0.25)
    assert sum(isinstance(x, Halve) and x.scale == 0.25 for x in m.modules()) == 8  # every ResNet-18 block
    with pytest.raises(TypeError, match=r"does not take option\(s\) \['groups'\]"):
        tinlab.create_model("halve", groups=2)
    from tinlab.engine.config import ConfigError, load_config
    assert load_config(None, ["model.name=halve", "model.options.scale=0.1"]).model.options == {"scale": 0.1}
    with pytest.raises(ConfigError, match="key 'model.options.scale' must be float"):
        load_config(None, ["model.name=halve", "model.options.scale=big"])


def test_plugin_options_with_no_type_or_a_tuple_default_are_accepted(scratch_registry):
    from tinlab.engine.config import load_config

    tinlab.register_temporal_op("loose", lambda c, t, fold=None, ks=(3, 3): nn.Identity(),
                                defaults={"fold": None, "ks": (3, 3)})
    cfg = load_config(None, ["model.name=loose", "model.options.fold=4", "model.options.ks=[1, 3]"])
    assert cfg.model.options == {"fold": 4, "ks": (1, 3)}


def test_names_are_checked_and_taken_names_refused(scratch_registry):
    for bad in ("Bad Name", "mine-v2", "naïve"):
        with pytest.raises(ValueError, match="lower-case ASCII"):
            tinlab.register_temporal_op(bad, lambda c, t: nn.Identity())
    with pytest.raises(ValueError, match="'tin' is registered already"):
        tinlab.register_temporal_op("tin", lambda c, t: nn.Identity())


def test_nothing_else_holds_a_list_of_model_names():
    """In the code of tinlab, the workflow and the benchmarks, no list, tuple or set literal names four or
    more of the models: every list of models is read from the registry (registry.py registers each
    built-in with its own call). Benchmarks comparing two or three specific modules are not lists of models."""
    names = set(tinlab.list_models())
    holders = []
    for folder in ("tinlab", "workflow", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                    found = {e.value for e in node.elts if isinstance(e, ast.Constant)} & names
                    if len(found) >= 4:
                        holders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    for path in (REPO / "workflow").rglob("*.smk"):  # Snakemake files are not Python: the literal, by pattern
        for m in re.finditer(r"[\[(]([^\[\]()]*)[\])]", path.read_text()):
            if len(set(re.findall(r"[\"'](\w+)[\"']", m[1])) & names) >= 4:
                holders.append(str(path.relative_to(REPO)))
    assert holders == [], holders


def test_importing_the_registry_and_config_checks_needs_no_torch():
    code = ("import sys, tinlab, tinlab.engine.config as c; c.load_config(None, ['model.name=tsm']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr
