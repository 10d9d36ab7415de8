"""tinlab/ops/_kernel.py: the fused kernel is built at install, ships in the wheel, checks its indices,
and everything still runs (one warning) when it is unavailable."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tinlab.ops._kernel import kernels
from tinlab.ops.interlacing import interlace_frames, interlace_frames_backward

REPO = Path(__file__).resolve().parents[2]
needs_kernel = pytest.mark.skipif(kernels() is None, reason="the fused kernel is not available here")


@needs_kernel
@pytest.mark.parametrize("bad", [-1, 8, 1 << 40])
def test_out_of_range_source_frames_raise_instead_of_reading_out_of_bounds(bad):
    x = torch.randn(2, 8, 3, 10)
    src = torch.zeros(2, 8, 2, dtype=torch.long)
    coef = torch.ones(2, 8, 2)
    src[1, 5, 1] = bad
    with pytest.raises(IndexError, match=re.escape(f"source frame {bad} / 0 at position 27 is outside [0, 8)")):
        interlace_frames(x, src, torch.zeros_like(src), coef, coef)
    with pytest.raises(IndexError, match="outside"):
        interlace_frames_backward(x, torch.zeros_like(src), src, coef, coef, torch.randn_like(x), True, True, True)


CHECK = textwrap.dedent("""
    import warnings, torch
    import tinlab
    from tinlab.ops import _kernel
    from tinlab.ops._kernel import kernels, torch_path
    print("module", tinlab.__file__)
    op = tinlab.ops.create_temporal_op("tin", channels=16, num_segments=8)
    x = torch.randn(16, 16, 5, 5, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        print("kernel", kernels() is not None, _kernel.library_path())
        y = op(x)
        y.square().sum().backward()
        op(x)  # a second call warns no more
    with torch_path():
        x2 = x.detach().clone().requires_grad_()
        y2 = op(x2)
        y2.square().sum().backward()
    assert torch.allclose(y, y2, atol=1e-6) and torch.allclose(x.grad, x2.grad, atol=1e-5)
    print("warnings", len([w for w in caught if "pure-PyTorch" in str(w.message)]))
""")


@pytest.mark.slow
def test_a_wheel_installs_the_kernel_and_runs_without_it_too(tmp_path):
    """pip wheel (not editable) -> a fresh venv -> TIN forward+backward on the fast path; then the same
    with the library removed: the PyTorch path, one warning, same result."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), "-q"], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("tinlab-*.whl"))
    assert "linux" in wheel.name or "macosx" in wheel.name  # a platform wheel: it carries a binary
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    # The fresh venv sees this environment's dependencies (torch, numpy, ...) after its own packages; the
    # wheel is unpacked into it as pip would install it (no pip needed inside).
    here = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "torch").is_dir())
    (site / "deps.pth").write_text(here + "\n")
    shutil.unpack_archive(str(wheel), str(site), format="zip")
    python = tmp_path / "venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TINLAB_KERNELS")}
    run = lambda: subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, env=env,
                                 timeout=300)
    fast = run()
    assert fast.returncode == 0, fast.stderr[-3000:]
    assert f"module {site}/tinlab/__init__.py" in fast.stdout and "kernel True" in fast.stdout
    assert "warnings 0" in fast.stdout
    for lib in (site / "tinlab" / "ops").glob("_interlace*.so"):
        lib.unlink()
    slow = run()
    assert slow.returncode == 0, slow.stderr[-3000:]
    assert "kernel False None" in slow.stdout and "warnings 1" in slow.stdout
