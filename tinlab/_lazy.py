"""Lazy package attributes (PEP 562): a package lists where its public names live and imports a module
only when one of its names is first used, so that ``import tinlab.registry`` or the workflow's config
checks never import PyTorch."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``names`` (attribute -> submodule, relative to ``package``)."""
    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(names[name], package)
        value = module if names[name].rsplit(".", 1)[-1] == name else getattr(module, name)
        setattr(importlib.import_module(package), name, value)  # resolved once
        return value
    return __getattr__
