"""Latency of temporal ops and whole models, CPU and CUDA, with profiler traces.

``python -m tinlab latency --out results/latency.csv`` times every model (inference and one
training step) and every temporal op (plus a plain tensor copy, the memory-bound floor) on the same
input, in interleaved rounds (A B C ... A B C ...) so that machine noise falls on all candidates
alike, and reports medians, IQRs, clips/s and the ratios to TSN and TSM measured in the same run.

* CPU: a fixed thread count (recorded), warm-up rounds, wall-clock ``perf_counter``.
* CUDA: CUDA events with synchronisation, ``cudnn.benchmark`` on with fixed shapes, warm-up;
  ``--dtype bfloat16`` (autocast) and ``--channels-last`` options.

``--trace-dir results/traces`` also records a ``torch.profiler`` trace per model (schedule: 1 wait,
1 warm-up, 3 active steps) with ``tensorboard_trace_handler`` into ``results/traces/<model>_T<frames>/`` and
prints a per-operator summary: ``tensorboard --logdir results/traces`` (torch-tb-profiler) or
https://ui.perfetto.dev open the ``*.pt.trace.json`` files.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..models import create_model, options_key
from ..ops import create_temporal_op
from ..registry import list_models, list_temporal_ops


def op_names() -> list[str]:
    """What the op table times: a plain copy (the memory-bound floor), then every registered module."""
    return ["copy", *list_temporal_ops()]


@dataclass
class Setting:
    """What one latency table is measured under (every field lands in each CSV row)."""
    device: str = "cpu"
    dtype: str = "float32"  # float32 | bfloat16 (autocast)
    threads: int = 2
    batch: int = 1
    frames: int = 8
    size: int = 224
    backbone: str = "resnet50"
    width_mult: float = 1.0
    small_stem: bool = False
    num_classes: int = 174
    channels_last: bool = False
    rounds: int = 10
    warmup: int = 2
    # model -> its options (those that differ from the registered defaults): the models and ops timed
    # are the ones a table's runs trained, and each row records them (``options``, JSON)
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options_of(self, name: str) -> dict[str, Any]:
        return dict(self.model_options.get(name, {}))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
                      device: torch.device | str = "cpu", inner: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each fn, one sample per round, candidates interleaved within a round.

    On CUDA each sample is timed with CUDA events around ``inner`` calls (device time, synchronised);
    on CPU with ``perf_counter``. The first ``warmup`` rounds are discarded.
    """
    device = torch.device(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(warmup + rounds):
        for name, fn in fns.items():
            if device.type == "cuda":
                # The events go on the timed device's own stream (the current device may be another GPU).
                stream = torch.cuda.current_stream(device)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                _synchronize(device)
                start.record(stream)
                with torch.cuda.device(device):
                    for _ in range(inner):
                        fn()
                end.record(stream)
                end.synchronize()
                elapsed = start.elapsed_time(end) / 1e3
            else:
                t0 = time.perf_counter()
                for _ in range(inner):
                    fn()
                elapsed = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(elapsed / inner)
    return times


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, quartiles and IQR, 10th/90th percentile (ms) of a list of seconds."""
    q = statistics.quantiles(samples, n=20, method="inclusive") if len(samples) > 1 else samples * 19
    return {"median_ms": statistics.median(samples) * 1e3, "iqr_ms": (q[14] - q[4]) * 1e3,
            "q1_ms": q[4] * 1e3, "q3_ms": q[14] * 1e3,
            "p10_ms": q[1] * 1e3, "p90_ms": q[17] * 1e3, "samples": len(samples)}


def latency(model: nn.Module, clip: torch.Tensor, *, rounds: int = 10, warmup: int = 2,
            train: bool = False) -> dict[str, float]:
    """Median, IQR and 10th/90th percentile (ms) of ``model(clip)`` (inference under
    ``inference_mode``; with ``train`` one training step: forward, a summed loss and backward), on the
    clip's device, after ``warmup`` untimed calls.

    Example:
        >>> import tinlab
        >>> m = tinlab.create_model("tsm", backbone="resnet18", num_classes=4, num_segments=4,
        ...                         width_mult=0.25, small_stem=True)
        >>> sorted(latency(m, torch.randn(1, 4, 3, 16, 16), rounds=3, warmup=1))
        ['iqr_ms', 'median_ms', 'p10_ms', 'p90_ms', 'q1_ms', 'q3_ms', 'samples']
    """
    model.train(train)

    def step() -> None:
        if train:
            model(clip).sum().backward()
        else:
            with torch.inference_mode():
                model(clip)

    return summarize(interleaved_times({"model": step}, rounds, warmup, clip.device)["model"])


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": None}


def amp_of(s: Setting, device: torch.device) -> torch.dtype | None:
    """The autocast dtype a setting times under: on a GPU the policy of training and evaluation
    (:func:`tinlab.engine.runtime.amp_dtype`: bfloat16 where supported, else float16 with a warning;
    ``auto`` = that policy); on the CPU what was asked (float32: none)."""
    from ..engine.runtime import amp_dtype

    if s.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {s.dtype!r}")
    if device.type == "cuda":
        return amp_dtype(device, True, DTYPES[s.dtype])
    return None if s.dtype in ("float32", "auto") else DTYPES[s.dtype]


def _autocast(s: Setting, device: torch.device):
    amp = amp_of(s, device)
    return torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext()


@contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """cuDNN autotuning for the block (fixed shapes: timing after warm-up), the flag restored after."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled or before
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def model_candidates(s: Setting, models: list[str], modes: list[str]) -> tuple[dict, dict]:
    """Callables timing each (model, mode), and the built models (for traces). The callables do not
    switch the model's mode: :func:`run_latency` times one mode at a time with the models set to it."""
    device = torch.device(s.device)
    fns, built = {}, {}
    clip = torch.randn(s.batch, s.frames, 3, s.size, s.size, device=device)
    target = torch.randint(0, s.num_classes, (s.batch,), device=device)
    for name in models:
        torch.manual_seed(0)
        model = create_model(name, backbone=s.backbone, num_classes=s.num_classes, num_segments=s.frames,
                             width_mult=s.width_mult, small_stem=s.small_stem, **s.options_of(name)).to(device)
        if s.channels_last:
            model = model.to(memory_format=torch.channels_last)
        built[name] = model
        if "infer" in modes:
            def infer(model=model):
                with torch.inference_mode(), _autocast(s, device):
                    model(clip)
            fns[(name, "infer")] = infer
        if "train" in modes:
            opt = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)

            def train_step(model=model, opt=opt):
                opt.zero_grad(set_to_none=True)
                with _autocast(s, device):
                    loss = nn.functional.cross_entropy(model(clip), target)
                loss.backward()
                opt.step()
            fns[(name, "train")] = train_step
    return fns, built


def op_candidates(s: Setting, ops: list[str], channels: int, size: int, modes: list[str]) -> dict:
    """Callables timing each temporal op (and a plain copy) on (batch*frames, channels, size, size)."""
    device = torch.device(s.device)
    x = torch.randn(s.batch * s.frames, channels, size, size, device=device)
    xg = x.clone().requires_grad_()
    grad = torch.randn_like(x)
    fns = {}
    for name in ops:
        torch.manual_seed(0)
        op = ((lambda v: v.clone()) if name == "copy" else
              create_temporal_op(name, channels, s.frames, **s.options_of(name)).to(device))
        if "infer" in modes:
            def fwd(op=op):
                with torch.inference_mode(), _autocast(s, device):
                    op(x)
            fns[(name, "infer")] = fwd
        if "train" in modes and name != "copy":
            def fwd_bwd(op=op):
                xg.grad = None
                with _autocast(s, device):
                    y = op(xg)
                y.backward(grad)
            fns[(name, "train")] = fwd_bwd
    return fns


def _rows(kind: str, times: dict, s: Setting, extra: dict[str, Any]) -> list[dict[str, Any]]:
    from ..utils.provenance import device_name

    setting = {k: v for k, v in asdict(s).items() if k not in ("model_options", "rounds", "warmup")}
    amp = amp_of(s, torch.device(s.device))
    common = {**setting, "amp": str(amp).replace("torch.", "") if amp else "off", "device_name": device_name(s.device),
              "torch": torch.__version__}
    rows = []
    for (name, mode), samples in times.items():
        stats = summarize(samples)
        rows.append({"kind": kind, "name": name, "mode": mode, "options": options_key(name, s.options_of(name)) if name != "copy" else "{}",
                     **common, **stats,
                     "clips_per_s": s.batch / (stats["median_ms"] / 1e3), **extra})
    by_key = {(r["name"], r["mode"]): r["median_ms"] for r in rows}
    copy = by_key.get(("copy", "infer"))  # the memory-bound floor of a forward pass
    for r in rows:
        for ref in ("tsn", "tsm"):
            base = by_key.get((ref, r["mode"]))
            r[f"ratio_to_{ref}"] = r["median_ms"] / base if base else None
        r["ratio_to_copy"] = r["median_ms"] / copy if kind == "op" and r["mode"] == "infer" and copy else None
    return rows


def parse_model_options(text: str | None) -> dict[str, dict[str, Any]]:
    """``--model-options`` (JSON: ``{"tsm": {"shift_div": 4}}``), checked against each model's own
    options: a name that is no model, or an option the model does not take, is a UserError naming it."""
    from ..errors import UserError
    from ..registry import get_module

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"--model-options: not JSON ({e.msg} at character {e.pos}): {text!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise UserError(f"--model-options: expected {{model: {{option: value}}}}, got {text!r}")
    for name, options in value.items():
        try:
            defaults = get_module(name).defaults
        except ValueError as e:
            raise UserError(f"--model-options: {e}") from None
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise UserError(f"--model-options: model {name!r} does not take option(s) {unknown}; its options: "
                            f"{sorted(defaults) or 'none'}")
    return {name: {k: tuple(v) if isinstance(get_module(name).defaults[k], tuple) and isinstance(v, list) else v
                   for k, v in options.items()} for name, options in value.items()}


def run_latency(s: Setting, models: list[str], ops: list[str], modes: list[str],
                op_channels: int = 256, op_size: int = 28, trace_dir: str | None = None
                ) -> "pandas.DataFrame":  # noqa: F821
    """Time models and ops under setting ``s``; optionally record a profiler trace per model."""
    import pandas as pd

    torch.set_num_threads(s.threads)
    with cudnn_benchmark(s.device.startswith("cuda")):
        return pd.DataFrame(_measure(s, models, ops, modes, op_channels, op_size, trace_dir))


def _measure(s: Setting, models: list[str], ops: list[str], modes: list[str], op_channels: int, op_size: int,
             trace_dir: str | None) -> list[dict[str, Any]]:
    rows = []
    if models:
        fns, built = model_candidates(s, models, modes)
        times: dict = {}
        for mode in modes:  # one mode at a time, so no eval()/train() walk of the module tree is timed
            for model in built.values():
                model.train(mode == "train")
            times.update(interleaved_times({k: f for k, f in fns.items() if k[1] == mode}, s.rounds, s.warmup,
                                           s.device))
        rows += _rows("model", times, s, {"op_channels": None, "op_size": None})
        if trace_dir:
            for name, model in built.items():
                record_trace(model, s, Path(trace_dir) / f"{name}_T{s.frames}")
    if ops:
        fns = op_candidates(s, ops, op_channels, op_size, modes)
        rows += _rows("op", interleaved_times(fns, s.rounds, s.warmup, s.device, inner=3), s,
                      {"op_channels": op_channels, "op_size": op_size})
    return rows


def record_trace(model: nn.Module, s: Setting, out_dir: Path) -> Path:
    """A torch.profiler trace of 3 inference steps into ``out_dir`` (TensorBoard / Perfetto)."""
    from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    device = torch.device(s.device)
    clip = torch.randn(s.batch, s.frames, 3, s.size, s.size, device=device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    with profile(activities=activities, schedule=schedule(wait=1, warmup=1, active=3),
                 on_trace_ready=tensorboard_trace_handler(str(out_dir)), record_shapes=True) as prof:
        for _ in range(5):
            with torch.inference_mode(), _autocast(s, device):
                model(clip)
            _synchronize(device)
            prof.step()
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"== {out_dir.name}: per-operator summary (3 steps) ==")
    print(prof.key_averages().table(sort_by=sort, row_limit=12))
    return out_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results/latency.csv", help="CSV to write")
    parser.add_argument("--models", nargs="*", default=list_models(), choices=list_models())
    parser.add_argument("--ops", nargs="*", default=op_names(), choices=op_names())
    parser.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                        help="autocast dtype (auto: training's policy, bfloat16 where the GPU has it, else float16)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frames", type=int, nargs="+", default=[8], help="one table per value, concatenated")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--width-mult", type=float, default=1.0)
    parser.add_argument("--small-stem", action="store_true")
    parser.add_argument("--num-classes", type=int, default=174)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--op-channels", type=int, default=256)
    parser.add_argument("--op-size", type=int, default=28)
    parser.add_argument("--model-options", metavar="JSON",
                        help='options of the models (and ops) timed, as JSON: \'{"tsm": {"shift_div": 4}}\' '
                             "(the workflow passes its model_options, so Table 1's latency is of the models it trained)")
    parser.add_argument("--trace-dir", help="write a torch.profiler trace per model under this folder")


def run(args: argparse.Namespace) -> int:
    from ..utils.io import write_csv
    from ..utils.provenance import provenance

    import pandas as pd

    model_options = parse_model_options(args.model_options)
    frame = pd.concat([run_latency(Setting(
        device=args.device, dtype=args.dtype, threads=args.threads, batch=args.batch, frames=frames,
        size=args.size, backbone=args.backbone, width_mult=args.width_mult, small_stem=args.small_stem,
        num_classes=args.num_classes, channels_last=args.channels_last, rounds=args.rounds, warmup=args.warmup,
        model_options=model_options),
        args.models, args.ops, args.modes, args.op_channels, args.op_size, args.trace_dir)
        for frames in args.frames], ignore_index=True)
    config = {k: v for k, v in vars(args).items() if k != "command"}
    write_csv(frame, args.out, provenance(config, args.device))
    cols = ["kind", "name", "frames", "mode", "median_ms", "iqr_ms", "clips_per_s", "ratio_to_tsn", "ratio_to_tsm",
            "ratio_to_copy"]
    print(frame[cols].to_string(index=False, float_format="%.3f"))
    print(f"-> {args.out}")
    return 0
