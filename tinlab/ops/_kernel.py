"""Loader of tinlab's compiled CPU kernels (``csrc/interlace.c``).

``pip install`` builds them into ``tinlab/ops/_interlace*.so`` (setup.py: plain C with OpenMP, no
PyTorch headers); they are loaded here with ctypes. If the library is missing (a build without a C
compiler, a source tree that was never installed), cannot be loaded, or ``TINLAB_KERNELS=0`` is set,
:func:`kernels` returns None and the ops use their pure-PyTorch path: same results, slower, one warning.
"""
from __future__ import annotations

import ctypes
import os
import warnings
from contextlib import contextmanager
from functools import lru_cache
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Iterator

_NAME = "_interlace"


def library_path() -> Path | None:
    """The installed kernel library next to this module, or None."""
    for suffix in EXTENSION_SUFFIXES:
        path = Path(__file__).with_name(_NAME + suffix)
        if path.is_file():
            return path
    return None


def _signature(lib: ctypes.CDLL) -> None:
    p, i64, c_int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix in ("f32", "f64"):
        fwd = getattr(lib, f"interlace_fwd_{suffix}")
        fwd.argtypes = [p, p, p, p, p, p, i64, i64, i64, i64, i64, c_int]
        fwd.restype = None
        bwd = getattr(lib, f"interlace_bwd_{suffix}")
        bwd.argtypes = [p, p, p, p, p, p, p, p, p, i64, i64, i64, i64, i64, c_int]
        bwd.restype = None
    lib.interlace_first_bad_index.argtypes = [p, p, i64, i64]
    lib.interlace_first_bad_index.restype = i64


_disabled = False


@contextmanager
def torch_path() -> Iterator[None]:
    """Within this block the ops take their pure-PyTorch path (tests and benchmarks compare both)."""
    global _disabled
    before, _disabled = _disabled, True
    try:
        yield
    finally:
        _disabled = before


def kernels() -> ctypes.CDLL | None:
    """The compiled kernel library, or None when disabled or unavailable (a warning, once, says why)."""
    if _disabled or os.environ.get("TINLAB_KERNELS", "1") == "0":
        return None
    return _load()


@lru_cache(maxsize=1)
def _load() -> ctypes.CDLL | None:
    path = library_path()
    why = None
    if path is None:
        why = "the compiled kernel is not installed (pip install builds it with a C compiler)"
    else:
        try:
            lib = ctypes.CDLL(str(path))
            _signature(lib)
            return lib
        except (OSError, AttributeError) as e:  # unloadable, or a library of another tinlab version
            why = f"loading {path} failed ({e})"
    warnings.warn(f"tinlab: {why}; TIN uses its slower pure-PyTorch path", RuntimeWarning, stacklevel=3)
    return None
