"""The GPU acceptance check: ``make gpu-check`` (= ``python bench/gpu_check.py --out results/reference/gpu``).

On a machine with a CUDA GPU it runs, and writes into ``--out`` (each CSV with its provenance):

1. ``pytest -m cuda``: the CUDA tests (Triton kernels against the PyTorch path on the GPU, forward passes
   of every model under ``torch.cuda.set_sync_debug_mode("error")``, the compiled models);
2. ``op_ratios.csv``: TIN's interlacing against a device copy (bandwidth), TIN and TSM ops forward and
   forward+backward (ResNet-50 layer-2 tensor, interleaved rounds);
3. ``models.csv``: TSN / TSM / TIN ResNet-50 at 8 frames, 224 px, bf16 autocast (the AMP policy),
   channels_last: latency at batch 1 and throughput at batch 32, eager and ``torch.compile``d, and the
   training step (forward, backward, SGD step) at batch 8 and 8 / 16 frames, eager: its clips/s is
   what sizes the data loader (docs/data.md: "How many loader workers");
4. ``training.csv``: a short AMP training run of every model on generated data (loss must fall, no
   non-finite step);
5. ``traces/<model>/``: a torch.profiler trace per model.

Targets on an H100 / H200 (exit code 1 when missed, each named): interlace forward >= 70% of copy
bandwidth; TIN-R50 latency and throughput within 10% of TSM-R50.

``--device cpu --quick`` runs every step at toy sizes on the CPU (no CUDA tests, no targets): the test
suite uses it to keep this script working where no GPU is.
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
    extra = interleaved_times({"interlace": lambda: tinlab.ops.interlace(x, o, w), "copy": lambda: x.clone()},
                              s.rounds, s.warmup, device, inner=3)
    times.update({f"{k}_fwd": summarize(v)["median_ms"] for k, v in extra.items()})
    gbytes = 2 * x.numel() * x.element_size() / 1e9  # read + write
    rows = [{"quantity": k, "ms": v} for k, v in times.items()]
    rows += [{"quantity": "interlace_fwd/copy_fwd", "ratio": times["interlace_fwd"] / times["copy_fwd"]},
             {"quantity": "copy_bandwidth_gb_s", "value": gbytes / (times["copy_fwd"] / 1e3)},
             {"quantity": "interlace_bandwidth_gb_s", "value": gbytes / (times["interlace_fwd"] / 1e3)},
             {"quantity": "tin_fwd/tsm_fwd", "ratio": times["tin_fwd"] / times["tsm_fwd"]},
             {"quantity": "tin_fwdbwd/tsm_fwdbwd", "ratio": times["tin_fwdbwd"] / times["tsm_fwdbwd"]}]
    return pd.DataFrame(rows)


def models(device: str, quick: bool, trace_dir: Path) -> pd.DataFrame:
    dtype = "auto" if device.startswith("cuda") else "float32"
    scale = dict(backbone="resnet18", size=32, width_mult=0.25) if quick else dict(backbone="resnet50", size=224)
    rows = []
    for batch, what in ((1, "latency"), (2 if quick else 32, "throughput")):
        for compiled in (False,) if quick else (False, True):  # compiling on CPU: make test-compile
            s = Setting(device=device, dtype=dtype, batch=batch, frames=8, channels_last=device.startswith("cuda"),
                        rounds=2 if quick else 20, warmup=1 if quick else 5, **scale)
            built = {}
            for name in ("tsn", "tsm", "tin"):
                torch.manual_seed(0)
                model = tinlab.create_model(name, backbone=s.backbone, num_classes=174, num_segments=8,
                                            width_mult=s.width_mult).to(device).eval()
                if s.channels_last:
                    model = model.to(memory_format=torch.channels_last)
                built[name] = torch.compile(model) if compiled else model
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
    """A few AMP training epochs of every model on generated data: the loss falls, every step finite."""
    from tinlab.data import generate
    from tinlab.engine.config import load_config
    from tinlab.engine.loop import Trainer

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
            result = trainer.fit()
            losses = [h["train"]["loss"] for h in result["history"]]
            rows.append({"model": name, "amp": str(trainer.amp).replace("torch.", "") if trainer.amp else "off",
                         "first_loss": losses[0], "last_loss": losses[-1], "val_top1": result["final"]["top1"]})
    return pd.DataFrame(rows)


def targets(ratios: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    missed = []
    got = dict(zip(ratios.quantity, ratios.ratio))
    if got["interlace_fwd/copy_fwd"] > TARGETS["interlace_fwd/copy_fwd"]:
        missed.append(f"interlace forward at {1 / got['interlace_fwd/copy_fwd']:.0%} of copy bandwidth (< 70%)")
    eager = table[~table.compiled].set_index(["measure", "model"]).median_ms
    for measure in ("latency", "throughput"):
        ratio = eager[measure, "tin"] / eager[measure, "tsm"]
        if ratio > TARGETS[f"tin_r50/tsm_r50 {measure}"]:
            missed.append(f"TIN-R50 {measure} {ratio:.2f}x TSM-R50 (> 1.10)")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes (the CPU smoke test of this script)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU here; run it on a machine with one (docs/gpus-and-clusters.md: 'GPUs and clusters')", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    prov = provenance({"device": args.device, "quick": args.quick}, args.device)
    failed = cuda_tests(args.out) if args.device.startswith("cuda") else 0
    ratios, table = op_ratios(args.device, args.quick), models(args.device, args.quick, args.out / "traces")
    write_csv(ratios, args.out / "op_ratios.csv", prov)
    write_csv(table, args.out / "models.csv", prov)
    write_csv(training(args.device, args.quick), args.out / "training.csv", prov)
    print(ratios.to_string(index=False), table.to_string(index=False), sep="\n\n")
    missed = targets(ratios, table) if args.device.startswith("cuda") and not args.quick else []
    for m in missed:
        print(f"gpu-check: target missed: {m}", file=sys.stderr)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
