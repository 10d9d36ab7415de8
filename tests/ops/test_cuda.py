"""CUDA tests (``pytest -m cuda``, part of ``make gpu-check``; skipped without a GPU): the Triton kernels
on the GPU against the PyTorch path, every model's forward pass without a host-device sync, and an AMP
training step of every model."""
from __future__ import annotations

import pytest
import torch

import tinlab
from tinlab.ops.interlacing import (_interlace_frames_backward_torch, _interlace_frames_torch, interlace_coefficients,
                                    tin_coefficients, tin_interlace)

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]
SMALL = dict(backbone="resnet18", num_classes=6, width_mult=0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_triton_kernels_on_the_gpu_match_the_pytorch_path(dtype, channels_last):
    from tinlab.ops import triton_kernels as tk

    x4 = torch.randn(4 * 8, 32, 14, 14, device="cuda", dtype=dtype)
    if channels_last:
        x4 = x4.to(memory_format=torch.channels_last)
    rows = x4.view(4, 8, 8, 4, 196)
    o, w = torch.rand(4, 4, device="cuda") * 4 - 2, torch.rand(4, 8, 4, device="cuda") * 2
    coef = [c.contiguous() for c in interlace_coefficients(o, w, 8, "zero", dtype)]
    tol = dict(rtol=0, atol=2e-6) if dtype == torch.float32 else dict(rtol=1.6e-2, atol=1e-2)
    y = tk.interlace_forward(rows, *coef)
    assert y.stride() == rows.stride()
    torch.testing.assert_close(y.float(), _interlace_frames_torch(rows.contiguous().float(), coef[0], coef[1],
                                                                  coef[2].float(), coef[3].float()), **tol)
    grad = torch.randn_like(rows)
    got = tk.interlace_backward(rows, *coef, grad, True, True, True)
    want = _interlace_frames_backward_torch(rows.float(), coef[0], coef[1], coef[2].float(), coef[3].float(),
                                            grad.float(), True, True, True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.float(), b, rtol=1e-3 if dtype == torch.float32 else 5e-2,
                                   atol=1e-4 if dtype == torch.float32 else 5e-2)
    z, v = torch.randn(4, 2, device="cuda"), torch.randn(4, 2, 8, device="cuda")
    fused = tin_interlace(rows, z, v, 2.0, True, "zero")
    torch.testing.assert_close(fused.float(), _interlace_frames_torch(
        rows.float(), *tin_coefficients(z, v, 8, 2.0, True, "zero", torch.float32)), **tol)


@pytest.mark.parametrize("name", tinlab.list_models())
def test_forward_passes_do_not_sync_with_the_host(name):
    model = tinlab.create_model(name, num_segments=8, **SMALL).cuda().eval().to(memory_format=torch.channels_last)
    clip = torch.randn(2, 8, 3, 64, 64, device="cuda")
    model(clip)  # warm-up: kernels compiled, libraries loaded
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(clip)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("name", tinlab.list_models())
def test_an_amp_training_step_of_every_model(name):
    from tinlab.engine.runtime import amp_dtype

    model = tinlab.create_model(name, num_segments=8, **SMALL).cuda().to(memory_format=torch.channels_last)
    dtype = amp_dtype(torch.device("cuda"))
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    clip, target = torch.randn(2, 8, 3, 64, 64, device="cuda"), torch.tensor([0, 1], device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        loss = torch.nn.functional.cross_entropy(model(clip).float(), target)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_tin_network_with_fused_nets_on_the_gpu_matches_its_modules(channels_last):
    """tinlab::tin_nets (fused on CUDA) against the same network with its nets hooked (then run as modules):
    output and every parameter gradient, float32."""
    torch.manual_seed(0)
    model = tinlab.create_model("tin", num_segments=8, **SMALL).cuda().eval()
    clip = torch.randn(2, 8, 3, 64, 64, device="cuda")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    def step():
        model.zero_grad()
        out = model(clip)
        out.square().sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    fused = step()
    handles = [m.offset_net.register_forward_hook(lambda *a: None) for _, m in model.interlace_modules()]
    modules = step()
    for h in handles:
        h.remove()
    torch.testing.assert_close(fused[0], modules[0], rtol=1e-4, atol=1e-4)
    for name, g in modules[1].items():
        torch.testing.assert_close(fused[1][name], g, rtol=1e-3, atol=1e-4, msg=lambda m: f"{name}: {m}")
