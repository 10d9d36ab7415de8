"""Build-on-first-use loader of tinlab's fused CPU kernels (``csrc/interlace.c``).

The kernel is plain C with OpenMP, compiled once per machine with the system C compiler (``cc`` or
``$CC``) into ``$TINLAB_CACHE`` (default ``~/.cache/tinlab``), keyed by the hash of its source and
flags, and loaded with ctypes. No compiler, or ``TINLAB_KERNELS=0``: :func:`kernels` returns None and
the callers use their pure-PyTorch path (slower, same results). Compilation is atomic (temporary
file + rename), so concurrent first uses cannot load a half-written library.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator
from pathlib import Path

_SOURCE = Path(__file__).with_name("csrc") / "interlace.c"
_FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c11"]


def _cache_dir() -> Path:
    return Path(os.environ.get("TINLAB_CACHE", Path.home() / ".cache" / "tinlab"))


def _signature(lib: ctypes.CDLL) -> None:
    p, i64, c_int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix in ("f32", "f64"):
        fwd = getattr(lib, f"interlace_fwd_{suffix}")
        fwd.argtypes = [p, p, p, p, p, p, i64, i64, i64, i64, i64, c_int]
        fwd.restype = None
        bwd = getattr(lib, f"interlace_bwd_{suffix}")
        bwd.argtypes = [p, p, p, p, p, p, p, p, p, i64, i64, i64, i64, i64, c_int]
        bwd.restype = None


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
    """The compiled kernel library, or None when disabled or unavailable (a warning says why)."""
    if _disabled or os.environ.get("TINLAB_KERNELS", "1") == "0":
        return None
    return _load()


@lru_cache(maxsize=1)
def _load() -> ctypes.CDLL | None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        warnings.warn("tinlab: no C compiler found; TIN uses its slower pure-PyTorch path", stacklevel=2)
        return None
    key = hashlib.sha256(_SOURCE.read_bytes() + " ".join([compiler, *_FLAGS, platform.machine(),
                                                            platform.node()]).encode()).hexdigest()[:16]
    target = _cache_dir() / f"interlace-{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
        os.close(fd)
        try:
            subprocess.run([compiler, *_FLAGS, str(_SOURCE), "-o", tmp], check=True, capture_output=True,
                           text=True, timeout=120)
            os.replace(tmp, target)
        except (OSError, subprocess.SubprocessError) as e:
            Path(tmp).unlink(missing_ok=True)
            detail = getattr(e, "stderr", "") or str(e)
            warnings.warn(f"tinlab: compiling {_SOURCE.name} failed ({detail.strip()[:300]}); TIN uses its "
                          "slower pure-PyTorch path", stacklevel=2)
            return None
    lib = ctypes.CDLL(str(target))
    _signature(lib)
    return lib
