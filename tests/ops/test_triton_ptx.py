"""What the Triton compiler makes of the CUDA kernels, checked without a GPU: each streaming kernel is
compiled for sm_90 (H100) by Triton 3.7.1's real compiler, and its PTX is read. On dense rows
(``LAYOUT=0``: contiguous clips) bfloat16 and float32 loads and stores are 16-byte vectors
(``ld.global.v4.b32``); with runtime strides they are scalar. Divisibility by 16 of the pointers and
strides and channels per group is declared as Triton's launcher specialises it at run time (true of
every ResNet-50 block; H * W need not be). The
compiler runs in a subprocess: the test session runs Triton's interpreter, which replaces the kernels."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("triton")

TIN = dict(REVERSE=True, WEIGHTS=True, CLAMP=False, BLOCK=1024)


def accesses(kernel: str, dtype: str) -> list[set[str]]:
    """The global loads and stores in the PTX of ``kernel`` (sm_90, 4 warps) for ``dtype`` data, for
    LAYOUT 0 (dense rows) and 1 (strided)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, __file__, kernel, dtype], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [set(found) for found in json.loads(done.stdout.splitlines()[-1])]


@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("kernel", ["forward", "tin_backward_x"])
def test_dense_rows_compile_to_16_byte_vector_accesses(kernel, dtype):
    dense, strided = accesses(kernel, dtype)
    assert {"ld.global.v4.b32", "st.global.v4.b32"} <= dense, dense
    assert "ld.global.v4.b32" not in strided, strided  # what the layout flag buys


def _compile(kernel: str, dtype: str, layout: int) -> list[str]:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from tinlab.ops import _triton_interlace as k

    fn = getattr(k, kernel)
    data = ("x", "y") if kernel == "forward" else ("gy", "gx")
    # the data gradient as tinlab::tin_block launches it: the descriptor's gradient added in the same pass
    constexprs = {**TIN, "LAYOUT": layout, **({"FUSED": True} if kernel == "forward" else {"ADD_SMALL": True})}
    signature, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in data or name.endswith("_ptr") or name == "small":
            signature[name], attrs[(i,)] = (f"*{dtype}" if name in data else "*fp32"), [["tt.divisibility", 16]]
        elif name == "scale":
            signature[name] = "fp32"
        elif re.fullmatch(r"s[xyg][ntrc]", name):  # strides of frames, rows, channels: multiples of 16
            signature[name], attrs[(i,)] = "i64", [["tt.divisibility", 16]]
        elif name == "CG":  # channels per group: fold / groups, a multiple of 16 in every ResNet-50 block
            signature[name], attrs[(i,)] = "i32", [["tt.divisibility", 16]]
        else:  # L = H * W is not (7 x 7, 14 x 14)
            signature[name] = "i64" if name.startswith("s") else "i32"
    source = ASTSource(fn, signature, attrs=attrs,
                       constexprs={(fn.arg_names.index(n),): v for n, v in constexprs.items()})
    text = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]
    return sorted(set(re.findall(r"(?:ld|st)\.global(?:\.\w+)*", text)))


if __name__ == "__main__":
    print(json.dumps([_compile(sys.argv[1], sys.argv[2], layout) for layout in (0, 1)]))
