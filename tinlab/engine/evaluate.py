"""``python -m tinlab evaluate --run DIR [--out metrics.json]`` (or ``--config CFG --checkpoint PT``).

Writes one metrics JSON (atomically, with provenance): top-1, top-5, per-class accuracy, the confusion
matrix (rows = true class, columns = predicted), twin metrics and throughput. Views: with
``data.test_clips`` x ``data.test_crops`` > 1 the dataset yields (V, T, 3, H, W) per video; the V
logits of a video are averaged (TSM's test script; logits, not softmax scores).

Time-reversed twins (datasets with ``twins.json``, e.g. synthetic-motion), over the videos whose class
c has a twin c':

- ``pair_accuracy``: fraction with logit[c] > logit[c'], i.e. accuracy of the two-way choice between a
  class and its reverse (ties count as wrong). Chance is 0.5; a model blind to frame order (TSN) stays
  there on synthetic-motion.
- ``twin_confusion``: fraction whose top-1 prediction is exactly the twin c'.

Per video, ``<metrics stem>.predictions.csv`` (columns index, video, label, pred, correct, top5_correct,
twin, pair_correct; one row per validation video in list order, ``twin``/``pair_correct`` empty for videos
without a twin class): two runs evaluated on the same list can be compared video by video
(:mod:`tinlab.report.stats`, ``tinlab compare``).

It also writes ``<metrics stem>.offsets.csv`` (columns layer, layer_index, kind, group, frame,
value): per TIN / r-TCN layer, the learned offsets (kind ``offset``, per group) and frame weights
(kind ``weight``, per group and frame) averaged over every validation view; the data of the TIN
paper's Figure 5 (no rows for models without such layers). The same means are in the JSON under
``offsets``.

Example::

    python -m tinlab evaluate --run runs/tin-smoke            # -> runs/tin-smoke/metrics.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data import build_dataloader, normalize_clips
from ..errors import CheckpointError, ConfigError, DataError, EvaluationFailed, RunFolderError, diverged_label
from ..models.checkpoints import load_checkpoint
from ..utils.io import read_text, write_csv, write_json
from ..utils.cli import positive_int
from ..utils.provenance import provenance
from .builders import build_model, build_split
from .callbacks import InterlaceProbe
from .checkpoint import RunFolder
from .config import Config, config_hash, config_to_dict, load_config
from .runtime import amp_dtype, autocast, resolve_device, seed_everything, set_threads


def load_twins(root: str | Path, num_classes: int) -> list[int | None] | None:
    """``twins.json`` of a dataset (twins[c] = label of c's time-reversed twin or null), or None."""
    path = Path(root) / "twins.json"
    if not path.is_file():
        return None
    try:
        twins = json.loads(read_text(path))
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(twins, list) or len(twins) != num_classes:
        raise DataError(f"{path} lists {len(twins) if isinstance(twins, list) else 'no'} classes, the dataset "
                        f"has {num_classes}")
    return twins


def load_class_names(root: str | Path, num_classes: int) -> list[str]:
    path = Path(root) / "classes.txt"
    names = read_text(path).splitlines() if path.is_file() else []
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def classification_metrics(logits: Tensor, labels: Tensor, class_names: list[str],
                           twins: list[int | None] | None = None) -> dict[str, Any]:
    """Top-1/top-5, per-class accuracy, confusion matrix and twin metrics from (N, K) logits.

    Example:
        >>> m = classification_metrics(torch.tensor([[2., 1.], [2., 1.]]), torch.tensor([0, 1]),
        ...                            ["left", "right"], twins=[1, 0])
        >>> m["top1"], m["twins"]["pair_accuracy"], m["confusion"]
        (0.5, 0.5, [[1, 0], [1, 0]])
    """
    n, k = logits.shape
    pred = logits.argmax(1)
    top = logits.topk(min(5, k), 1).indices
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones(n, dtype=torch.long), accumulate=True)
    per_class = {}
    for c, name in enumerate(class_names):
        count = int(confusion[c].sum())
        per_class[name] = {"accuracy": confusion[c, c].item() / count if count else None, "count": count}
    result: dict[str, Any] = {
        "num_videos": n, "top1": (pred == labels).float().mean().item(),
        "top5": (top == labels[:, None]).any(1).float().mean().item(), "topk_k": min(5, k),
        "per_class": per_class, "confusion": confusion.tolist(), "class_names": class_names,
    }
    if twins is not None:
        twin = torch.tensor([-1 if t is None else t for t in twins])[labels]
        has = twin >= 0
        if has.any():
            own = logits[has].gather(1, labels[has, None])[:, 0]
            other = logits[has].gather(1, twin[has, None])[:, 0]
            result["twins"] = {"num_videos": int(has.sum()),
                               "pair_accuracy": (own > other).float().mean().item(),
                               "twin_confusion": (pred[has] == twin[has]).float().mean().item()}
    return result


def per_video_predictions(logits: Tensor, labels: Tensor, videos: list[str],
                          twins: list[int | None] | None = None) -> "pandas.DataFrame":
    """One row per video: its list path, label, top-1 prediction, whether top-1 / top-5 are right, and for
    videos whose class has a time-reversed twin, the twin's label and whether logit[c] > logit[twin]."""
    import pandas as pd

    if len(videos) != len(labels):
        raise ValueError(f"{len(videos)} video names for {len(labels)} predictions")
    k = logits.shape[1]
    pred = logits.argmax(1)
    top5 = (logits.topk(min(5, k), 1).indices == labels[:, None]).any(1)
    table = pd.DataFrame({"index": range(len(labels)), "video": videos, "label": labels.tolist(),
                          "pred": pred.tolist(), "correct": (pred == labels).int().tolist(),
                          "top5_correct": top5.int().tolist()})
    twin = torch.full_like(labels, -1) if twins is None else \
        torch.tensor([-1 if t is None else t for t in twins], dtype=labels.dtype)[labels]
    has = twin >= 0
    own = logits.gather(1, labels[:, None])[:, 0]
    other = logits.gather(1, twin.clamp(min=0)[:, None])[:, 0]
    table["twin"] = pd.Series(twin.tolist(), dtype="Int64").where(has.numpy())
    table["pair_correct"] = pd.Series((own > other).int().tolist(), dtype="Int64").where(has.numpy())
    return table


@torch.no_grad()
def predict(model: torch.nn.Module, loader: Any, device: torch.device, amp: torch.dtype | None
            ) -> tuple[Tensor, Tensor, int]:
    """(logits (N, K) averaged over each video's views, labels (N,), number of views run)."""
    all_logits, all_labels, views = [], [], 0
    for clips, labels in loader:
        clips = normalize_clips(clips.to(device, non_blocking=True))  # uint8 until here
        multi = clips.dim() == 6  # (N, V, T, 3, H, W): fold the views into the batch
        n, v = clips.shape[0], clips.shape[1] if multi else 1
        with autocast(device, amp):
            logits = model(clips.flatten(0, 1) if multi else clips).float()
        all_logits.append(logits.view(n, v, -1).mean(1).cpu())
        all_labels.append(labels)
        views += n * v
    return torch.cat(all_logits), torch.cat(all_labels), views


def cost_of(model: torch.nn.Module, cfg: Config, device: torch.device) -> dict[str, Any]:
    """GFLOPs per video (one view, multiply-adds) and parameters of the evaluated model at the run's
    own scale, counted once here so that reports only read them (:mod:`tinlab.measure.cost`)."""
    from ..measure.cost import flops, parameters

    size, frames = cfg.data.input_size, cfg.data.num_segments
    clip = torch.zeros(1, frames, 3, size, size, device=device)
    return {"gflops": flops(model, clip) / 1e9, "params": parameters(model), "input_size": size, "frames": frames}


def offsets_section(probe: InterlaceProbe, csv: Path, prov: dict[str, Any]) -> dict[str, Any]:
    """Write the probe's offsets/weights table to ``csv``; the same means for the metrics JSON."""
    table = probe.table()
    write_csv(table, csv, prov)
    section = {name: {"offsets": g["value"].tolist()} for name, g in
               table[table.kind == "offset"].groupby("layer", sort=False)}
    for name, g in table[table.kind == "weight"].groupby("layer", sort=False):
        section[name]["weights"] = (g.sort_values(["frame", "group"])["value"]
                                    .to_numpy().reshape(-1, g.group.nunique()).tolist())
    return section


def _load(model: torch.nn.Module, checkpoint: str | Path, digest: str | None) -> dict[str, Any]:
    """Load any supported checkpoint format strictly; a tinlab checkpoint trained with another config is
    refused when ``digest`` is given. Returns its epoch, format, config hash and code versions."""
    info = load_checkpoint(model, checkpoint)
    if digest is not None and info["config_hash"] not in (None, digest):
        raise CheckpointError(f"{checkpoint} was trained with config hash {info['config_hash']}, the config "
                              f"given hashes to {digest}")
    return {"epoch": info["epoch"], "format": info["format"], "train_config_hash": info["config_hash"],
            "train_code_version": "+".join(info["code_versions"] or []) or None}


def record_divergence_metrics(cfg: Config, out: str | Path, diverged: dict[str, Any], *, checkpoint: str | Path | None = None,
                      checkpoint_epoch: int | None = None, train_code_version: str | None = None,
                      train_config_hash: str | None = None) -> dict[str, Any]:
    """The metrics of a run that diverged: no accuracy (``top1``/``top5`` None), ``diverged`` (what went
    non-finite, the epoch, iteration, value), and the cost columns counted on the model, so that tables
    show the row with its GFLOPs and parameters and "diverged at epoch k" in place of accuracies. The
    predictions and offsets CSVs are written with their columns and no rows."""
    out, digest = Path(out), config_hash(cfg)
    device = resolve_device(cfg.run.device)
    set_threads(cfg.run.threads)
    model = build_model(cfg).to(device).eval()
    k = model.num_classes
    prov = {**provenance(config_to_dict(cfg), device), "config_hash": digest, "train_config_hash": train_config_hash,
            "seed": cfg.run.seed}
    names = load_class_names(cfg.data.root, k)
    metrics = {"diverged": diverged, "top1": None, "top5": None, "num_videos": 0, "class_names": names,
               "checkpoint": None if checkpoint is None else str(checkpoint), "checkpoint_epoch": checkpoint_epoch,
               "train_code_version": train_code_version, "finished": True, "cost": cost_of(model, cfg, device)}
    csv = out.with_name(out.stem + ".offsets.csv")
    import pandas as pd

    write_csv(pd.DataFrame(columns=["layer", "layer_index", "kind", "group", "frame", "value"]), csv, prov)
    predictions = out.with_name(out.stem + ".predictions.csv")
    empty = torch.zeros(0, k)
    write_csv(per_video_predictions(empty, torch.zeros(0, dtype=torch.long), [], None), predictions, prov)
    metrics.update(offsets={}, offsets_csv=str(csv), predictions_csv=str(predictions), provenance=prov)
    write_json(out, metrics)
    return metrics


def evaluate(cfg: Config, checkpoint: str | Path, out: str | Path, batch_size: int | None = None,
             check_hash: bool = True, finished: bool = True, record_divergence: bool = False) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (a training checkpoint, or any format tinlab reads: official TSM / TIN /
    TAdaConv, MMAction2, a bare state_dict; :mod:`tinlab.models.checkpoints`) on the validation split of
    ``cfg`` with its test views; write the metrics JSON ``out`` (and the offsets CSV for TIN/r-TCN).
    Non-finite logits (diverged weights) give no accuracy: :class:`~tinlab.errors.EvaluationFailed` and no
    file, or with ``record_divergence`` metrics that record it (:func:`record_divergence_metrics`).
    ``check_hash``: refuse a checkpoint trained with another config (off when test-time overrides
    such as more views change the hash on purpose; both hashes are recorded). ``finished`` is
    recorded: False when a run was evaluated before its training finished.

    Example (reads a run)::

        m = evaluate(load_config("runs/x/config.yaml"), "runs/x/checkpoint.pt", "runs/x/metrics.json")
        m["top1"], m["twins"]["pair_accuracy"]
    """
    out, digest = Path(out), config_hash(cfg)
    device = resolve_device(cfg.run.device)
    seed_everything(cfg.run.seed, cfg.run.deterministic, device.type == "cuda")
    set_threads(cfg.run.threads)
    model = build_model(cfg)
    origin = _load(model, checkpoint, digest if check_hash else None)
    dataset = build_split(cfg, "val", views=True)
    loader = build_dataloader(dataset, batch_size or cfg.data.batch_size, False, cfg.data.num_workers, cfg.run.seed)
    model.to(device).eval()
    probe, start = InterlaceProbe(model), time.perf_counter()
    amp = amp_dtype(device, cfg.run.amp)
    logits, labels, views = predict(model, loader, device, amp)
    seconds, k = time.perf_counter() - start, model.num_classes
    probe.remove()
    bad = int((~torch.isfinite(logits).all(1)).sum())
    if bad:
        error = EvaluationFailed(f"{checkpoint}: non-finite logits for {bad} of {len(labels)} validation videos (the "
                                 f"weights diverged): no accuracy to report", what="evaluation logits",
                                 epoch=origin["epoch"], value=float("nan"))
        if not record_divergence:
            raise error
        return record_divergence_metrics(cfg, out, {**error.details(), "videos": bad}, checkpoint=checkpoint,
                                         checkpoint_epoch=origin["epoch"],
                                         train_code_version=origin["train_code_version"],
                                         train_config_hash=origin["train_config_hash"])
    twins = load_twins(cfg.data.root, k)
    metrics = classification_metrics(logits, labels, load_class_names(cfg.data.root, k), twins)
    metrics.update({"views_per_video": views // max(len(labels), 1), "checkpoint": str(checkpoint),
                    "checkpoint_epoch": origin["epoch"], "checkpoint_format": origin["format"],
                    "train_code_version": origin["train_code_version"],
                    "finished": finished, "wall_seconds": seconds,
                    "clips_per_s": views / seconds, "videos_per_s": len(labels) / seconds,
                    "cost": cost_of(model, cfg, device)})
    prov = {**provenance(config_to_dict(cfg), device), "amp": str(amp).replace("torch.", "") if amp else "off",
            "config_hash": digest,
            "train_config_hash": origin["train_config_hash"], "seed": cfg.run.seed}
    csv = out.with_name(out.stem + ".offsets.csv")  # written for every model (no rows without TIN layers)
    metrics.update(offsets=offsets_section(probe, csv, prov), offsets_csv=str(csv))
    predictions = out.with_name(out.stem + ".predictions.csv")
    write_csv(per_video_predictions(logits, labels, [r.path for r in dataset.records], twins), predictions, prov)
    metrics["predictions_csv"] = str(predictions)
    metrics["provenance"] = prov
    write_json(out, metrics)
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", help="run folder written by `tinlab train` (uses its config.yaml)")
    parser.add_argument("--config", help="YAML config (with --checkpoint, instead of --run)")
    parser.add_argument("--checkpoint", help="checkpoint or state_dict (default with --run: checkpoint.pt)")
    parser.add_argument("--weights", choices=("last", "best"), default="last",
                        help="with --run: the last epoch (checkpoint.pt) or the best validated (model_best.pt)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set data.test_clips=2 (repeatable)")
    parser.add_argument("--out", help="metrics JSON (default: <run>/metrics.json)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: data.batch_size")
    parser.add_argument("--record-divergence", action="store_true",
                        help="a run whose training diverged, or whose logits are non-finite, gets metrics that "
                             "record the divergence (no accuracy) instead of an error (exit 1)")
    parser.add_argument("--allow-unfinished", action="store_true",
                        help="evaluate a run whose training has not finished (recorded as finished: false)")


def _from_run(args: argparse.Namespace) -> tuple[Path, Path, Path, bool]:
    """(config, checkpoint, out, finished) of ``--run``; an unfinished run is refused unless allowed."""
    folder = RunFolder(args.run)
    if not folder.config.is_file():
        raise RunFolderError(f"{folder.path} is not a run folder (no config.yaml)")
    finished = folder.summary.is_file()
    if not finished and not args.allow_unfinished:
        state = "failed: " + folder.failed.name if folder.failed.is_file() else "has not finished training"
        raise RunFolderError(f"{folder.path} {state} (no {folder.summary.name}); its checkpoint is not the final "
                             f"model: finish it with the same `tinlab train` command, or pass --allow-unfinished")
    checkpoint = Path(args.checkpoint) if args.checkpoint else folder.checkpoint if args.weights == "last" \
        else folder.best
    return Path(args.config or folder.config), checkpoint, Path(args.out or folder.path / "metrics.json"), finished


def _diverged_in_training(args: argparse.Namespace) -> dict[str, Any] | None:
    """``diverged`` of the run's summary (``tinlab train --record-divergence``), or None."""
    if not args.run:
        return None
    summary = RunFolder(args.run).finished_summary()
    return (summary or {}).get("diverged")


def run(args: argparse.Namespace) -> int:
    if args.run:
        config, checkpoint, out, finished = _from_run(args)
    elif args.config and args.checkpoint and args.out:
        config, checkpoint, out, finished = args.config, args.checkpoint, args.out, True
    else:
        raise ConfigError("give --run DIR, or --config, --checkpoint and --out")
    cfg = load_config(config, args.overrides)
    diverged = _diverged_in_training(args)
    if diverged is not None:
        if not args.record_divergence:
            raise EvaluationFailed(f"{args.run}: training {diverged_label(diverged)}: {diverged.get('message')}; "
                                   f"there is no trained model to evaluate (--record-divergence records it)")
        record_divergence_metrics(cfg, out, diverged, train_config_hash=config_hash(cfg))
        print(f"tinlab evaluate: {out}: training {diverged_label(diverged)}: recorded, no accuracy")
        return 0
    m = evaluate(cfg, checkpoint, out, args.batch_size, check_hash=not args.overrides, finished=finished,
                 record_divergence=args.record_divergence)
    if m.get("diverged"):
        print(f"tinlab evaluate: {out}: {diverged_label(m['diverged'])}: {m['diverged']['message']}; recorded, "
              f"no accuracy")
        return 0
    twins = m.get("twins", {})
    k = m.get("topk_k", 5)
    print(f"tinlab evaluate: {out}: top-1 {100 * m['top1']:.1f}%"
          + (f" top-{k} {100 * m['top5']:.1f}%" if k < len(m.get("class_names", ())) else "")
          + (f" pair accuracy {100 * twins['pair_accuracy']:.1f}%" if twins else ""))
    return 0
