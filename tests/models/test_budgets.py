"""What keeps a model fast on a GPU, checked without one: a training step of every model on the meta
device in both memory formats (channels_last preserved through the temporal modules, no copy), an
operator-count budget per model (eager GPU launches), and the compiled path (no graph breaks)."""
from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch
import torch._dynamo
from torch.utils._python_dispatch import TorchDispatchMode

import tinlab

SMALL = dict(backbone="resnet18", num_classes=6, width_mult=0.25, small_stem=True)


class OpCount(TorchDispatchMode):
    """Counts dispatched operators (each one a kernel launch in eager mode on a GPU, views aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def op_count(name: str) -> int:
    """Dispatched ops of one ResNet-50 inference at 8 frames (on the meta device: no arithmetic)."""
    with torch.device("meta"):
        model = tinlab.create_model(name, backbone="resnet50", num_classes=174, num_segments=8).eval()
        clip = torch.empty(1, 8, 3, 224, 224)
    with torch.inference_mode(), OpCount() as count:
        model(clip)
    return sum(count.ops.values())


# Budgets relative to TSM-R50 (measured: TSN 179, TSM 227, TIN 227, r-TCN 803, TCN 339, TAda 514, TAdaV2 786:
# its routing's LayerNorms and attention add ~17 small ops per block). TIN issued 995 (4.4x TSM) before its
# coefficient arithmetic moved into tinlab::tin_interlace, 339 before a whole block became tinlab::tin_block
# (counted once here; it launches 3 kernels on a GPU, see CUSTOM_LAUNCHES).
BUDGET = {"tsn": 1.0, "tsm": 1.0, "tin": 1.05, "rtcn": 4.0, "tcn": 1.7, "tada": 2.5, "tadav2": 3.6}


def test_operator_count_budgets():
    counts = {name: op_count(name) for name in tinlab.list_models()}
    assert counts["tsm"] < 1.3 * counts["tsn"]
    over = {n: f"{counts[n]} > {BUDGET[n]} x {counts['tsm']}" for n in BUDGET if counts[n] > BUDGET[n] * counts["tsm"]}
    assert not over, (over, counts)


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("name", tinlab.list_models())
def test_a_training_step_on_the_meta_device(name, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with torch.device("meta"):
        model = tinlab.create_model(name, num_segments=4, **SMALL).to(memory_format=fmt)
        clip, target = torch.empty(2, 4, 3, 16, 16), torch.zeros(2, dtype=torch.long)
    seen = []
    for module in model.modules():
        if type(module).__name__ in ("TemporalShift", "TemporalInterlace", "RegularizedTCN"):
            module.register_forward_hook(lambda m, i, out: seen.append((type(m).__name__, i[0], out)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(model(clip), target)
    loss.backward()
    optimizer.step()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.parameters() if p.requires_grad)
    for kind, x, out in seen:  # the temporal ops keep the layout they are given (TSM, TIN: no copy)
        if kind != "RegularizedTCN" and x.is_contiguous(memory_format=fmt):
            assert out.is_contiguous(memory_format=fmt), (kind, out.stride())


@pytest.mark.parametrize("name", tinlab.list_models())
def test_compiled_models_have_no_graph_break_and_compute_the_same(name):
    torch.manual_seed(0)
    model = tinlab.create_model(name, num_segments=4, **SMALL).eval()
    clip = torch.randn(2, 4, 3, 16, 16)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(clip)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(clip), model(clip))
    torch._dynamo.reset()


@pytest.mark.compile
@pytest.mark.parametrize("name", tinlab.list_models())
def test_inductor_compiles_every_model_to_the_same_output(name):
    """CPU inductor (what torch.compile uses by default), custom ops included. About 100 s cold on 2
    cores for the six models, so not in `make test`: `make test-compile` (and `make gpu-check`) run it."""
    torch.manual_seed(0)
    model = tinlab.create_model(name, num_segments=4, **SMALL).eval()
    clip = torch.randn(2, 4, 3, 16, 16)
    torch._dynamo.reset()
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, backend="inductor", fullgraph=True)(clip), model(clip))
    torch._dynamo.reset()


VIEWS = {"aten.detach", "aten.t", "aten.view", "aten.expand", "aten.unsqueeze", "aten.transpose", "aten.slice",
         "aten.select", "aten.permute", "aten._unsafe_view", "aten.as_strided", "aten.alias", "aten.squeeze",
         "aten.reshape", "aten.flatten"}
# tinlab's custom ops, each dispatched once, launch this many kernels on a GPU (fp32 training):
# tin_interlace_backward: its two Triton kernels and the two sums into dL/dz, dL/dv; leading_row_mean: the
# mean and the transposed copy; tin_nets: the descriptor and the nets' kernel; tin_nets_backward: its kernel
# and the sum of the per-video parameter gradients; tin_block: tin_nets and the interlacing kernel;
# tin_block_backward: the coefficient kernel and its two sums, the nets' kernel and its sum, the data kernel.
CUSTOM_LAUNCHES = {"tinlab.tin_interlace_backward": 4, "tinlab.leading_row_mean": 2, "tinlab.tin_nets": 2,
                   "tinlab.tin_nets_backward": 2, "tinlab.tin_block": 3, "tinlab.tin_block_backward": 6}


def training_step_launches(name: str, probe: bool = False) -> int:
    """Kernel launches of one eager ResNet-50 training step at 8 frames (forward, loss, backward), counted on
    the meta device: every dispatched op that is not a view, custom ops by what they launch on a GPU."""
    from tinlab.engine.callbacks import InterlaceProbe

    with torch.device("meta"):
        model = tinlab.create_model(name, backbone="resnet50", num_classes=174, num_segments=8).train()
        clip, target = torch.empty(1, 8, 3, 224, 224), torch.zeros(1, dtype=torch.long)
    sampler = InterlaceProbe(model)
    sampler.active = probe
    with OpCount() as count:
        torch.nn.functional.cross_entropy(model(clip), target).backward()
    sampler.remove()
    return sum(CUSTOM_LAUNCHES.get(op, 1) * n for op, n in count.ops.items() if op not in VIEWS)


def test_a_tin_training_step_launches_at_most_1_5_times_tsm():
    """Measured: TSM 500, TIN 612 (1.22x) on a step the offset monitor does not sample, 1,092 on one it samples
    (every 10th: its hooks make the nets run as modules), 660 (1.32x) on average over ten steps. Before:
    1,566 against 446 by the issue's count (the coefficients recomputed and differentiated by autograd, ~64
    launches per TIN block), then 868 with the nets as five modules (~22 launches per block with their
    backward; now 9 per block in tinlab::tin_block and its backward). The README quotes these counts."""
    tsm, tin, sampled = training_step_launches("tsm"), training_step_launches("tin"), training_step_launches("tin", True)
    assert tin <= 1.5 * tsm, (tin, tsm)
    assert (9 * tin + sampled) / 10 <= 1.5 * tsm, (tin, sampled, tsm)
    assert tin < sampled <= tin + 16 * 32  # the monitor's sampled step: the nets' layers, ~30 ops per TIN block
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"| {tsm} | {tin} | {tin / tsm:.2f}× |" in readme


def test_the_offset_monitor_samples_every_tenth_step():
    from types import SimpleNamespace

    from tinlab.engine.callbacks import OffsetMonitor

    model = tinlab.create_model("tin", num_segments=4, **SMALL)
    monitor = OffsetMonitor(every=10)
    trainer = SimpleNamespace(model=model)
    monitor.on_fit_start(trainer, 0)
    monitor.on_epoch_start(trainer, 0)
    active = []
    for it in range(25):
        active.append(monitor.probe.active)
        monitor.on_step_end(trainer, 0, it, 0.0, 0.0)
    assert [i for i, a in enumerate(active) if a] == [0, 10, 20]
