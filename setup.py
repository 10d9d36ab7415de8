"""Build of tinlab's one compiled part: the fused CPU kernels of TIN (tinlab/ops/csrc/interlace.c).

Everything else is in pyproject.toml. The kernels are plain C with OpenMP, built into the wheel as
``tinlab/ops/_interlace*.so`` and loaded with ctypes (tinlab/ops/_kernel.py), so the build needs a C
compiler but not PyTorch. ``optional=True``: without a compiler the install still succeeds and TIN runs
its pure-PyTorch path (one warning at first use).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "tinlab.ops._interlace",
    sources=["tinlab/ops/csrc/interlace.c"],
    # Portable code for any x86-64/arm64 of the install's kind (no -march=native: a wheel or a cloned VM
    # may run on another CPU); the loops are memory-bound, so baseline SIMD is enough.
    extra_compile_args=["-O3", "-fopenmp", "-std=c11"],
    extra_link_args=["-fopenmp"],
    optional=True,
)])
