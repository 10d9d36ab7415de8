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

For TIN and r-TCN it also writes ``<metrics stem>.offsets.csv`` (columns layer, layer_index, kind,
group, frame, value): per TemporalInterlace layer, the learned offsets (kind ``offset``, per group) and
frame weights (kind ``weight``, per group and frame) averaged over every validation view; the data of
the TIN paper's Figure 5. The same means are in the JSON under ``offsets``.

Example::

    python -m tinlab evaluate --run runs/tin-smoke            # -> runs/tin-smoke/metrics.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from ..data import build_dataloader
from ..utils.provenance import atomic_write_text, provenance, write_csv
from .config import Config, ConfigError, config_hash, config_to_dict, load_config
from .runtime import resolve_device, seed_everything
from .train import BEST, CHECKPOINT, build_model, build_split


def load_twins(root: str | Path, num_classes: int) -> list[int | None] | None:
    """``twins.json`` of a dataset (twins[c] = label of c's time-reversed twin or null), or None."""
    path = Path(root) / "twins.json"
    if not path.is_file():
        return None
    twins = json.loads(path.read_text())
    if len(twins) != num_classes:
        raise ValueError(f"{path} lists {len(twins)} classes, the dataset has {num_classes}")
    return twins


def load_class_names(root: str | Path, num_classes: int) -> list[str]:
    path = Path(root) / "classes.txt"
    names = path.read_text().splitlines() if path.is_file() else []
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


class _OffsetStats:
    """Running sums of every TIN/r-TCN layer's recorded offsets (N, G) and weights (N, T, G)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.layers = list(model.interlace_modules()) if hasattr(model, "interlace_modules") else []
        for _, m in self.layers:
            m.record = True
        self.sums: dict[str, list[Any]] = {name: [0.0, None, 0] for name, _ in self.layers}

    def update(self) -> None:
        """Add this batch on the device (no sync per layer and batch; :meth:`table` reads the sums once)."""
        for name, m in self.layers:
            s = self.sums[name]
            s[0] = s[0] + m.last_offsets.double().sum(0)
            if m.last_weights is not None:
                w = m.last_weights.double().sum(0)
                s[1] = w if s[1] is None else s[1] + w
            s[2] += m.last_offsets.shape[0]

    def table(self) -> pd.DataFrame:
        rows = []
        for index, (name, _) in enumerate(self.layers):
            off, wsum, count = self.sums[name]
            for g, v in enumerate((off / count).tolist()):
                rows.append({"layer": name, "layer_index": index, "kind": "offset", "group": g, "frame": None,
                             "value": v})
            if wsum is not None:
                for t, per_group in enumerate((wsum / count).tolist()):
                    for g, v in enumerate(per_group):
                        rows.append({"layer": name, "layer_index": index, "kind": "weight", "group": g,
                                     "frame": t, "value": v})
        return pd.DataFrame(rows, columns=["layer", "layer_index", "kind", "group", "frame", "value"])


def _load_weights(path: Path, digest: str | None) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(state_dict, {epoch, train_config_hash}); a config mismatch is an error when ``digest`` is given."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "model" not in state:
        return state, {"epoch": None, "train_config_hash": None}  # a bare state_dict
    if digest is not None and state.get("config_hash") not in (None, digest):
        raise ConfigError(f"{path} was trained with config hash {state.get('config_hash')}, "
                          f"the config given hashes to {digest}")
    return state["model"], {"epoch": state.get("epoch"), "train_config_hash": state.get("config_hash")}


@torch.no_grad()
def evaluate(cfg: Config, checkpoint: str | Path, out: str | Path, batch_size: int | None = None,
             check_hash: bool = True) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (a training checkpoint or a bare state_dict) on the validation split of
    ``cfg`` with its test views; write the metrics JSON ``out`` (and the offsets CSV for TIN/r-TCN).
    ``check_hash``: refuse a checkpoint trained with another config (off when test-time overrides
    such as more views change the hash on purpose; both hashes are recorded).

    Example (reads a run)::

        m = evaluate(load_config("runs/x/config.yaml"), "runs/x/checkpoint.pt", "runs/x/metrics.json")
        m["top1"], m["twins"]["pair_accuracy"]
    """
    out, checkpoint = Path(out), Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    digest = config_hash(cfg)
    device = resolve_device(cfg.run.device)
    seed_everything(cfg.run.seed, cfg.run.deterministic and device.type == "cpu")
    dataset = build_split(cfg, "val", views=True)
    loader = build_dataloader(dataset, batch_size or cfg.data.batch_size, False, cfg.data.num_workers,
                              cfg.run.seed)
    model = build_model(cfg)
    weights, origin = _load_weights(checkpoint, digest if check_hash else None)
    model.load_state_dict(weights)
    model.to(device).eval()
    offsets = _OffsetStats(model)
    amp = cfg.run.amp and device.type == "cuda"
    all_logits, all_labels, views = [], [], 0
    start = time.perf_counter()
    for clips, labels in loader:
        clips = clips.to(device, non_blocking=True)
        multi = clips.dim() == 6  # (N, V, T, 3, H, W): fold the views into the batch
        n, v = clips.shape[0], clips.shape[1] if multi else 1
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            logits = model(clips.flatten(0, 1) if multi else clips).float()
        offsets.update()
        all_logits.append(logits.view(n, v, -1).mean(1).cpu())
        all_labels.append(labels)
        views += n * v
    seconds = time.perf_counter() - start
    logits, labels = torch.cat(all_logits), torch.cat(all_labels)
    k = model.num_classes
    metrics = classification_metrics(logits, labels, load_class_names(cfg.data.root, k),
                                      load_twins(cfg.data.root, k))
    metrics.update({"views_per_video": views // max(len(labels), 1), "checkpoint": str(checkpoint),
                    "checkpoint_epoch": origin["epoch"], "wall_seconds": seconds, "clips_per_s": views / seconds,
                    "videos_per_s": len(labels) / seconds})
    prov = {**provenance(config_to_dict(cfg), device), "config_hash": digest,
            "train_config_hash": origin["train_config_hash"], "seed": cfg.run.seed}
    if offsets.layers:
        table = offsets.table()
        csv = out.with_name(out.stem + ".offsets.csv")
        write_csv(table, csv, prov)
        metrics["offsets_csv"] = str(csv)
        metrics["offsets"] = {name: {"offsets": g["value"].tolist()} for name, g in
                              table[table.kind == "offset"].groupby("layer", sort=False)}
        for name, g in table[table.kind == "weight"].groupby("layer", sort=False):
            metrics["offsets"][name]["weights"] = (g.sort_values(["frame", "group"])["value"]
                                                   .to_numpy().reshape(-1, g.group.nunique()).tolist())
    metrics["provenance"] = prov
    atomic_write_text(out, json.dumps(metrics, indent=2, default=str) + "\n")
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", help="run directory written by `tinlab train` (uses its config.yaml)")
    parser.add_argument("--config", help="YAML config (with --checkpoint, instead of --run)")
    parser.add_argument("--checkpoint", help="checkpoint or state_dict (default with --run: checkpoint.pt)")
    parser.add_argument("--weights", choices=("last", "best"), default="last",
                        help="with --run: the last epoch (checkpoint.pt) or the best validated (model_best.pt)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set data.test_clips=2 (repeatable)")
    parser.add_argument("--out", help="metrics JSON (default: <run>/metrics.json)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: data.batch_size")


def run(args: argparse.Namespace) -> int:
    try:
        if args.run:
            run_dir = Path(args.run)
            if not (run_dir / "config.yaml").is_file():
                raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml)")
            config = args.config or run_dir / "config.yaml"
            checkpoint = args.checkpoint or run_dir / (CHECKPOINT if args.weights == "last" else BEST)
            out = args.out or run_dir / "metrics.json"
        elif args.config and args.checkpoint and args.out:
            config, checkpoint, out = args.config, args.checkpoint, args.out
        else:
            raise ConfigError("give --run DIR, or --config, --checkpoint and --out")
        cfg = load_config(config, args.overrides)
        m = evaluate(cfg, checkpoint, out, args.batch_size, check_hash=not args.overrides)
    except ConfigError as e:
        print(f"tinlab evaluate: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"tinlab evaluate: error: {e}", file=sys.stderr)
        return 1
    twins = m.get("twins", {})
    print(f"tinlab evaluate: {out}: top-1 {m['top1']:.4f} top-5 {m['top5']:.4f}"
          + (f" pair accuracy {twins['pair_accuracy']:.4f}" if twins else ""))
    return 0
