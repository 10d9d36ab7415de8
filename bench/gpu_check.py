"""The GPU acceptance check: ``make gpu-check`` (= ``python bench/gpu_check.py --out results/reference/gpu``).

On a machine with a CUDA GPU it runs, and writes into ``--out`` (each CSV with its provenance):

1. ``pytest -m cuda``: the CUDA tests (Triton kernels against the PyTorch path on the GPU, forward passes
   of every model under ``torch.cuda.set_sync_debug_mode("error")``, the compiled models);
2. ``op_ratios.csv``: TIN's interlacing **kernel** (one launch of the fused Triton kernel on a ResNet-50
   layer-2 tensor, its coefficients from given pre-activations) against a device copy of the same tensor
   (bandwidth), and separately the whole op (``tinlab.ops.interlace``: ~25 dispatched ops around that
   kernel, host-bound at this size); TIN and TSM ops forward and forward+backward (interleaved rounds);
3. ``models.csv``: TSN / TSM / TIN ResNet-50 at 8 frames, 224 px, bf16 autocast (the AMP policy),
   channels_last, cuDNN autotuning on: latency at batch 1 and throughput at batch 32, eager (host launch
   bound at batch 1) and as a CUDA graph (``torch.compile(mode="reduce-overhead")``, unless
   ``--no-compile``), and the training step (forward, backward, SGD step) at batch 8 and 8 / 16 frames,
   eager: its clips/s is what sizes the data loader (docs/data.md: "How many loader workers");
4. ``training.csv``: a short AMP training run of every model on generated data (the loss must fall and
   every step be finite: a divergence is a row, and a missed target);
5. ``traces/<model>/``: a torch.profiler trace per model.

Each CSV is written as soon as its phase ends, so what was measured survives a later failure. The whole
check keeps to ``--budget-s`` (default 420 s on one H100, CUDA tests included): a phase that would start
past it is skipped and named. Targets on an H100 / H200 (exit code 1 when missed, each named):
interlace kernel >= 70% of copy bandwidth; TIN-R50 latency and throughput within 10% of TSM-R50, judged
on the CUDA-graph figures (eager batch-1 latency measures the host's launch rate, not the GPU); every
model's training loss falls.

``--dry-run`` (= ``--device cpu --quick``) runs every step at toy sizes on the CPU (no CUDA tests, no
targets): the test suite uses it to keep this script working where no GPU is.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tinlab  # noqa: E402
from tinlab.measure.timing import Setting, interleaved_times, op_candidates, record_trace, summarize  # noqa: E402
from tinlab.utils.io import write_csv  # noqa: E402
from tinlab.utils.provenance import provenance  # noqa: E402

TARGETS = {"interlace_fwd/copy_fwd": 1 / 0.7, "tin_r50/tsm_r50 latency": 1.10, "tin_r50/tsm_r50 throughput": 1.10}


def cuda_tests(out: Path) -> int:
    log = out / "pytest_cuda.log"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", str(REPO / "tests")],
                          capture_output=True, text=True, cwd=REPO)
    log.write_text(proc.stdout + proc.stderr)
    print(proc.stdout[-2000:])
    return proc.returncode


def op_ratios(device: str, quick: bool) -> pd.DataFrame:
    s = Setting(device=device, dtype="float32", batch=2 if quick else 8, frames=8, rounds=3 if quick else 20,
                warmup=1 if quick else 5)
    size, channels = (8, 32) if quick else (28, 256)
    fns = op_candidates(s, ["copy", "tsm", "tin"], channels, size, ["infer", "train"])
    times = {f"{name}_{'fwd' if mode == 'infer' else 'fwdbwd'}": summarize(t)["median_ms"]
             for (name, mode), t in interleaved_times(fns, s.rounds, s.warmup, device, inner=3).items()}
    x = torch.randn(s.batch, s.frames, channels, size, size, device=device)
    o, w = torch.rand(s.batch, 4, device=device) * 4 - 2, torch.rand(s.batch, s.frames, 4, device=device) * 2
    # TIN's layout: C/4 channels in 2 groups + 2 reverse groups, the rest copied, rows of (N, T, R, Cg, H*W)
    rows = x.view(s.batch, s.frames, 16, channels // 16, size * size)
    z, v = torch.randn(s.batch, 2, device=device), torch.randn(s.batch, 2, s.frames, device=device)
    candidates = {"interlace_op": lambda: tinlab.ops.interlace(x, o, w), "copy": lambda: x.clone()}
    if device.startswith("cuda"):
        from tinlab.ops.triton_kernels import tin_forward

        candidates["interlace_kernel"] = lambda: tin_forward(rows, z, v, 2.0, True, "zero")
    extra = interleaved_times(candidates, s.rounds, s.warmup, device, inner=3)
    times.update({f"{k}_fwd": summarize(v)["median_ms"] for k, v in extra.items()})
    kernel = times.get("interlace_kernel_fwd", times["interlace_op_fwd"])  # CPU: the op is what runs
    gbytes = 2 * x.numel() * x.element_size() / 1e9  # read + write
    rows_out = [{"quantity": k, "ms": v} for k, v in times.items()]
    rows_out += [{"quantity": "interlace_kernel_fwd/copy_fwd", "ratio": kernel / times["copy_fwd"]},
                 {"quantity": "interlace_op_fwd/copy_fwd", "ratio": times["interlace_op_fwd"] / times["copy_fwd"]},
                 {"quantity": "copy_bandwidth_gb_s", "value": gbytes / (times["copy_fwd"] / 1e3)},
                 {"quantity": "interlace_kernel_bandwidth_gb_s", "value": gbytes / (kernel / 1e3)},
                 {"quantity": "tin_fwd/tsm_fwd", "ratio": times["tin_fwd"] / times["tsm_fwd"]},
                 {"quantity": "tin_fwdbwd/tsm_fwdbwd", "ratio": times["tin_fwdbwd"] / times["tsm_fwdbwd"]}]
    return pd.DataFrame(rows_out)


def models(device: str, quick: bool, trace_dir: Path, compile_: bool = True) -> pd.DataFrame:
    from tinlab.measure.timing import cudnn_benchmark

    with cudnn_benchmark(device.startswith("cuda")):  # fixed shapes: autotuned convolutions, as training has
        return _models(device, quick, trace_dir, compile_)


def _models(device: str, quick: bool, trace_dir: Path, compile_: bool) -> pd.DataFrame:
    dtype = "auto" if device.startswith("cuda") else "float32"
    scale = dict(backbone="resnet18", size=32, width_mult=0.25) if quick else dict(backbone="resnet50", size=224)
    rows = []
    for batch, what in ((1, "latency"), (2 if quick else 32, "throughput")):
        # compiled = a CUDA graph (reduce-overhead): no host launch cost; compiling on CPU: make test-compile
        for compiled in (False,) if quick or not compile_ else (False, True):
            s = Setting(device=device, dtype=dtype, batch=batch, frames=8, channels_last=device.startswith("cuda"),
                        rounds=2 if quick else 20, warmup=1 if quick else 5, **scale)
            built = {}
            for name in ("tsn", "tsm", "tin"):
                torch.manual_seed(0)
                model = tinlab.create_model(name, backbone=s.backbone, num_classes=174, num_segments=8,
                                            width_mult=s.width_mult).to(device).eval()
                if s.channels_last:
                    model = model.to(memory_format=torch.channels_last)
                built[name] = torch.compile(model, mode="reduce-overhead") if compiled else model
            clip = torch.randn(batch, 8, 3, s.size, s.size, device=device)
            from tinlab.measure.timing import _autocast

            def infer(model):
                with torch.inference_mode(), _autocast(s, torch.device(device)):
                    model(clip)
            times = interleaved_times({n: (lambda m=m: infer(m)) for n, m in built.items()}, s.rounds, s.warmup,
                                      device)
            for name, samples in times.items():
                st = summarize(samples)
                rows.append({"model": name, "measure": what, "batch": batch, "frames": 8, "compiled": compiled,
                             "median_ms": st["median_ms"], "clips_per_s": batch / (st["median_ms"] / 1e3),
                             "dtype": dtype, "channels_last": s.channels_last, **scale})
            if not compiled and batch == 1:
                for name, model in built.items():
                    record_trace(model, s, trace_dir / name)
    rows += training_steps(device, quick, dtype, scale)
    return pd.DataFrame(rows)


def training_steps(device: str, quick: bool, dtype: str, scale: dict) -> list[dict]:
    """Clips/s of a training step (forward, backward, SGD step, AMP policy) per model and frame count."""
    from tinlab.engine.runtime import amp_dtype, autocast

    rows = []
    batch = 2 if quick else 8
    amp = amp_dtype(torch.device(device)) if dtype == "auto" else None
    for frames in (8,) if quick else (8, 16):
        steps = {}
        for name in ("tsn", "tsm", "tin"):
            torch.manual_seed(0)
            model = tinlab.create_model(name, backbone=scale["backbone"], num_classes=174, num_segments=frames,
                                        width_mult=scale.get("width_mult", 1.0)).to(device).train()
            if device.startswith("cuda"):
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            clip = torch.randn(batch, frames, 3, scale["size"], scale["size"], device=device)
            labels = torch.zeros(batch, dtype=torch.long, device=device)

            def step(model=model, opt=opt, clip=clip, labels=labels):
                with autocast(torch.device(device), amp):
                    loss = torch.nn.functional.cross_entropy(model(clip).float(), labels)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            steps[name] = step
        times = interleaved_times(steps, 2 if quick else 10, 1 if quick else 3, device)
        for name, samples in times.items():
            ms = summarize(samples)["median_ms"]
            rows.append({"model": name, "measure": "train", "batch": batch, "frames": frames, "compiled": False,
                         "median_ms": ms, "clips_per_s": batch / (ms / 1e3), "dtype": str(amp or "float32"),
                         "channels_last": device.startswith("cuda"), **scale})
    return rows


def training(device: str, quick: bool) -> pd.DataFrame:
    """A few AMP training epochs of every model on generated data: the loss must fall and every step be
    finite. A model whose run diverges is a row (``failed``), not an abort: the others are still measured."""
    from tinlab.data import generate
    from tinlab.engine.config import load_config
    from tinlab.engine.loop import Trainer
    from tinlab.errors import TrainingFailed

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = generate("synthetic-motion", Path(tmp) / "motion", num_train=16 if quick else 96, num_val=8,
                        size=32 if quick else 64, min_frames=8, max_frames=16)
        for name in tinlab.list_models():
            cfg = load_config(None, [f"model.name={name}", "model.backbone=resnet18", "model.width_mult=0.5",
                                     f"data.root={root}", "data.num_segments=8", "data.input_size=32",
                                     "data.batch_size=8", f"optim.epochs={1 if quick else 3}", "optim.lr=0.02",
                                     "optim.bn=train", f"run.device={'cuda' if device.startswith('cuda') else 'cpu'}"])
            trainer = Trainer(cfg)
            amp = str(trainer.amp).replace("torch.", "") if trainer.amp else "off"
            try:
                result = trainer.fit()
            except TrainingFailed as e:
                rows.append({"model": name, "amp": amp, "failed": str(e)})
                continue
            losses = [h["train"]["loss"] for h in result["history"]]
            rows.append({"model": name, "amp": amp, "first_loss": losses[0], "last_loss": losses[-1],
                         "val_top1": result["final"]["top1"], "failed": ""})
    return pd.DataFrame(rows)


def loss_targets(frame: pd.DataFrame, epochs: int) -> list[str]:
    """Every model trained without a non-finite step, and (over more than one epoch) its loss fell."""
    missed = [f"{r.model}: {r.failed}" for r in frame.itertuples() if r.failed]
    if epochs > 1:
        missed += [f"{r.model}: training loss did not fall ({r.first_loss:.3f} -> {r.last_loss:.3f})"
                   for r in frame.itertuples() if not r.failed and not r.last_loss < r.first_loss]
    return missed


def targets(ratios: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    missed = []
    got = dict(zip(ratios.quantity, ratios.ratio))
    if got["interlace_kernel_fwd/copy_fwd"] > TARGETS["interlace_fwd/copy_fwd"]:
        missed.append(f"interlace kernel at {1 / got['interlace_kernel_fwd/copy_fwd']:.0%} of copy bandwidth (< 70%)")
    graphs = table[table.compiled]
    if graphs.empty:
        return missed + ["TIN-R50 vs TSM-R50 not judged: no CUDA-graph figures (--no-compile or the budget)"]
    graph = graphs.set_index(["measure", "model"]).median_ms
    for measure in ("latency", "throughput"):
        ratio = graph[measure, "tin"] / graph[measure, "tsm"]
        if ratio > TARGETS[f"tin_r50/tsm_r50 {measure}"]:
            missed.append(f"TIN-R50 {measure} {ratio:.2f}x TSM-R50 as CUDA graphs (> 1.10)")
    return missed


def cuda_build_problem(device: str) -> str | None:
    """Why this torch cannot run the check on ``device`` (None: it can)."""
    if not device.startswith("cuda"):
        return None
    if torch.version.cuda is None:
        return (f"this torch ({torch.__version__}) is a CPU build: install a CUDA build of torch first (the "
                f"Makefile installs the CPU one: `make TORCH_SPEC=torch setup` takes the registry's CUDA build; "
                f"docs/gpus-and-clusters.md: 'GPUs and clusters')")
    if not torch.cuda.is_available():
        return (f"no CUDA GPU here (torch {torch.__version__}, CUDA {torch.version.cuda}); run it on a machine with "
                f"one (docs/gpus-and-clusters.md: 'GPUs and clusters')")
    return None


def main(argv: list[str] | None = None) -> int:
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes (the CPU smoke test of this script)")
    parser.add_argument("--no-compile", action="store_true", help="skip the CUDA-graph (torch.compile) timings")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="phases that would start after this many seconds are skipped (and named)")
    parser.add_argument("--dry-run", action="store_true",
                        help="everything but the real timings, on the CPU: each phase at toy sizes, no targets "
                             "(= --device cpu --quick; the test suite runs it)")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.device, args.quick = "cpu", True
    problem = cuda_build_problem(args.device)
    if problem:
        print(f"gpu-check: {problem}", file=sys.stderr)
        return 2
    start, skipped, missed, ratios = time.perf_counter(), [], [], None
    args.out.mkdir(parents=True, exist_ok=True)
    prov = provenance({"device": args.device, "quick": args.quick, "compile": not args.no_compile,
                       "budget_s": args.budget_s}, args.device)
    cuda = args.device.startswith("cuda")

    def phase(name: str) -> bool:
        if time.perf_counter() - start > args.budget_s:
            skipped.append(name)
            return False
        print(f"gpu-check: {name} ({time.perf_counter() - start:.0f} s in)", flush=True)
        return True

    failed = cuda_tests(args.out) if cuda and phase("CUDA tests") else 0
    if phase("op ratios"):
        ratios = op_ratios(args.device, args.quick)
        write_csv(ratios, args.out / "op_ratios.csv", prov)
        print(ratios.to_string(index=False))
    if phase("models"):
        table = models(args.device, args.quick, args.out / "traces", compile_=not args.no_compile)
        write_csv(table, args.out / "models.csv", prov)
        print(table.to_string(index=False))
        if cuda and not args.quick and ratios is not None:
            missed += targets(ratios, table)
    if phase("training"):
        trained = training(args.device, args.quick)
        write_csv(trained, args.out / "training.csv", prov)
        print(trained.to_string(index=False))
        missed += loss_targets(trained, 1 if args.quick else 3)
    missed += [f"{name} skipped: past the {args.budget_s:.0f} s budget" for name in skipped]
    for m in missed:
        print(f"gpu-check: target missed: {m}", file=sys.stderr)
    print(f"gpu-check: {time.perf_counter() - start:.0f} s")
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
