"""``python -m tinlab train --config CFG [--set key=value ...] [--out DIR]``: train one run, resumably.

A run directory holds ``config.yaml`` (the complete config), ``checkpoint.pt`` (after every epoch:
model, optimizer, scheduler, grad scaler, epoch, RNG states, best top-1, history), ``model_best.pt``,
``tb/`` (TensorBoard scalars) and, once finished, ``train_summary.json`` (its presence = complete).
Rerunning the same command resumes from the checkpoint and, on CPU, ends with bit-identical weights;
rerunning a complete run does nothing unless ``--force``. Under ``torchrun`` the same command trains
with DistributedDataParallel; only rank 0 writes.

Example::

    python -m tinlab train --config configs/tin.yaml --set optim.epochs=2 --out runs/tin-smoke
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ..data import build_dataloader, build_dataset, get_preset, set_epoch
from ..models import Recognizer, create_model
from ..utils.provenance import atomic_write_text, provenance
from .config import Config, ConfigError, OptimConfig, config_hash, config_to_dict, dump_config, load_config
from .runtime import (DistInfo, atomic_save, init_distributed, resolve_device,
                      rng_state, seed_everything, set_rng_state)

CHECKPOINT, SUMMARY, BEST = "checkpoint.pt", "train_summary.json", "model_best.pt"
CHECKPOINT_FORMAT = 1


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the message names the epoch and iteration (both 0-based)."""


def num_classes_of(cfg: Config) -> int:
    preset = get_preset(cfg.data.dataset, **cfg.data.preset)
    if preset.num_classes is None:
        raise ConfigError(f"dataset {cfg.data.dataset!r} has no class count: set data.preset.num_classes")
    return preset.num_classes


def build_model(cfg: Config) -> Recognizer:
    """The recogniser a config describes (seed first for a reproducible initialisation)."""
    m = cfg.model
    try:
        return create_model(m.name, backbone=m.backbone, num_classes=num_classes_of(cfg),
                            num_segments=cfg.data.num_segments, dropout=m.dropout, width_mult=m.width_mult,
                            small_stem=m.small_stem, pretrained=m.pretrained, **m.options)
    except TypeError as e:  # an op option the model does not take
        raise ConfigError(f"model.options {m.options!r} for model {m.name!r}: {e}") from None


def build_split(cfg: Config, split: str, views: bool = False):
    """The ``train`` or ``val`` dataset; ``views`` = the config's test clips x crops (evaluation)."""
    d = cfg.data
    try:
        return build_dataset(d.dataset, d.root, split=split, num_segments=d.num_segments,
                             input_size=d.input_size, seed=cfg.run.seed, scale_size=d.scale_size,
                             test_clips=d.test_clips if views else 1, test_crops=d.test_crops if views else 1,
                             **d.preset)
    except TypeError as e:
        raise ConfigError(f"data.preset {d.preset!r}: {e}") from None
    except FileNotFoundError as e:  # name the config key that pointed there
        raise FileNotFoundError(f"data.root = {d.root!r}: {e}") from None


def lr_factor(step: int, iters_per_epoch: int, o: OptimConfig) -> float:
    """Multiplier of the base lr at global iteration ``step``: linear warm-up, then step or cosine.

    Example:
        >>> from tinlab.engine.config import load_config
        >>> o = load_config(None).optim          # paper: x0.1 at epochs 10 and 20
        >>> [round(lr_factor(e * 100, 100, o), 4) for e in (0, 9, 10, 20)]
        [1.0, 1.0, 0.1, 0.01]
    """
    epoch = step / iters_per_epoch
    warm = o.warmup_epochs * iters_per_epoch
    if step < warm:
        return (step + 1) / warm
    if o.schedule == "step":
        return o.lr_gamma ** sum(epoch >= m for m in o.milestones)
    progress = (epoch - o.warmup_epochs) / max(o.epochs - o.warmup_epochs, 1e-8)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def frozen_batchnorms(model: nn.Module, mode: str) -> list[nn.Module]:
    """BatchNorm2d layers that ``mode`` freezes: ``frozen`` all, ``partial`` all but the first, as in
    TSN/TSM's partial BN. TAdaConv's zero-initialised temporal BN branch is never frozen: frozen at
    zero it would switch the TAda2D calibration branch off for good."""
    bns = [m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and "temporal" not in n]
    return {"train": [], "frozen": bns, "partial": bns[1:]}[mode]


def param_groups(model: Recognizer, o: OptimConfig) -> list[dict[str, Any]]:
    """SGD groups: fc weight (lr x fc_lr_mult_weight), fc bias (x fc_lr_mult_bias, no decay), other
    weights (decay), other 1-D params, i.e. biases and BN (no decay, as in the TSM/TIN code)."""
    fc = {id(model.fc.weight): "fc_weight", id(model.fc.bias): "fc_bias"}
    groups: dict[str, list[Tensor]] = {"fc_weight": [], "fc_bias": [], "weight": [], "no_decay": []}
    for p in model.parameters():
        if p.requires_grad:
            groups[fc.get(id(p), "weight" if p.dim() > 1 else "no_decay")].append(p)
    spec = {"fc_weight": (o.fc_lr_mult_weight, o.weight_decay), "fc_bias": (o.fc_lr_mult_bias, 0.0),
            "weight": (1.0, o.weight_decay), "no_decay": (1.0, 0.0)}
    return [{"params": ps, "lr": o.lr * spec[k][0], "weight_decay": spec[k][1], "name": k}
            for k, ps in groups.items() if ps]


class Trainer:
    """Model, loaders, optimizer and schedule of one config; :meth:`train_epoch` / :meth:`validate`.

    Example (reads a dataset)::

        trainer = Trainer(load_config("configs/tin.yaml"))
        stats = trainer.train_epoch(0)     # {'loss': ..., 'top1': ..., 'clips_per_s': ...}
        trainer.validate()                 # {'top1': ..., 'top5': ..., 'loss': ...}
    """

    def __init__(self, cfg: Config, dist: DistInfo | None = None, quiet: bool = True) -> None:
        self.cfg, self.quiet = cfg, quiet
        self.device = resolve_device(cfg.run.device)
        self.dist = dist or DistInfo()
        cuda = self.device.type == "cuda"
        self.amp, channels_last = cfg.run.amp and cuda, cfg.run.channels_last and cuda  # CUDA-only features
        seed_everything(cfg.run.seed, cfg.run.deterministic and not cuda)
        if cfg.data.batch_size % self.dist.world_size:
            raise ConfigError(f"data.batch_size = {cfg.data.batch_size} is not divisible by the "
                              f"{self.dist.world_size} processes")
        batch = cfg.data.batch_size // self.dist.world_size
        self.train_set, self.val_set = build_split(cfg, "train"), build_split(cfg, "val")
        shard = dict(rank=self.dist.rank, world_size=self.dist.world_size)
        self.train_loader = build_dataloader(self.train_set, batch, True, cfg.data.num_workers, cfg.run.seed, **shard)
        self.val_loader = build_dataloader(self.val_set, batch, False, cfg.data.num_workers, cfg.run.seed, **shard)
        if len(self.train_loader) == 0:
            raise ConfigError(f"data.batch_size = {cfg.data.batch_size} exceeds the {len(self.train_set)} "
                              f"training videos: no full batch")
        self.model = build_model(cfg).to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.frozen_bn = frozen_batchnorms(self.model, cfg.optim.bn)
        for m in self.frozen_bn:
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)
        self.interlace = list(self.model.interlace_modules())
        for _, m in self.interlace:
            m.record = True  # for the mean |offset| per layer in TensorBoard
        o = cfg.optim
        self.optimizer = torch.optim.SGD(param_groups(self.model, o), lr=o.lr, momentum=o.momentum)
        self.iters_per_epoch = len(self.train_loader)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, self.iters_per_epoch, o))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.net: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index or 0] if cuda else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.writer: Any = None  # a SummaryWriter on rank 0 when train() logs

    def _set_train_mode(self) -> None:
        self.net.train()
        for m in self.frozen_bn:
            m.eval()  # keep running statistics fixed

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()

    def _to_device(self, clips: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return clips.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch; returns mean loss, top-1, clips/s and the seconds spent waiting for data."""
        o = self.cfg.optim
        set_epoch(self.train_loader, epoch)  # the data layer's per-epoch randomness
        self._set_train_mode()
        params = [p for p in self.model.parameters() if p.requires_grad]
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        offsets = {name: torch.zeros((), device=self.device) for name, _ in self.interlace}
        seen, data_s = 0, 0.0
        bar = tqdm(total=self.iters_per_epoch, desc=f"epoch {epoch + 1}/{o.epochs}", unit="batch",
                   disable=self.quiet or not sys.stderr.isatty() or not self.dist.is_main, leave=False)
        start = tick = time.perf_counter()
        for it, (clips, labels) in enumerate(self.train_loader):
            data_s += time.perf_counter() - tick
            clips, labels = self._to_device(clips, labels)
            with self._autocast():
                logits = self.net(clips)
                loss = F.cross_entropy(logits.float(), labels)
            finite = torch.isfinite(loss.detach()).float()
            if self.dist.enabled:  # every rank must stop together, or the others hang in all-reduce
                tdist.all_reduce(finite, op=tdist.ReduceOp.MIN)
            if not finite.item():
                raise NonFiniteLossError(f"non-finite loss ({loss.item()}) at epoch {epoch} iteration {it} "
                                         f"(0-based; lr {self.scheduler.get_last_lr()[0]:.3g}): lower "
                                         f"optim.lr or check the data; the last checkpoint is intact")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if o.clip_grad > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(params, o.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            lr = self.scheduler.get_last_lr()[0]
            self.scheduler.step()
            n = labels.numel()
            loss_sum += loss.detach() * n
            correct += (logits.argmax(1) == labels).sum()
            seen += n
            for name, m in self.interlace:
                offsets[name] += m.last_offsets.abs().mean() * n
            # The loss leaves the device only for someone to see it (the finite check above is the one
            # sync every step needs).
            loss_value = loss.item() if self.writer is not None or not bar.disable else None
            if self.writer is not None:
                step = epoch * self.iters_per_epoch + it
                self.writer.add_scalar("train/loss", loss_value, step)
                self.writer.add_scalar("train/lr", lr, step)
            bar.update()
            if not bar.disable:
                bar.set_postfix(loss=f"{loss_value:.3f}",
                                clips_s=f"{seen * self.dist.world_size / (time.perf_counter() - start):.1f}")
            tick = time.perf_counter()
        bar.close()
        totals = torch.stack([loss_sum, correct, torch.tensor(float(seen), device=self.device),
                              *offsets.values()])
        if self.dist.enabled:
            tdist.all_reduce(totals)
        seconds = time.perf_counter() - start
        stats = {"loss": (totals[0] / totals[2]).item(), "top1": (totals[1] / totals[2]).item(),
                 "clips_per_s": totals[2].item() / seconds, "seconds": seconds, "data_seconds": data_s}
        stats["offsets"] = {name: (v / totals[2]).item() for name, v in zip(offsets, totals[3:])}
        return stats

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Single-view top-1/top-5/loss on the validation split (all ranks together under DDP)."""
        self.net.eval()
        k = min(5, self.model.num_classes)
        totals = torch.zeros(4, device=self.device)  # loss sum, top1, top5, count
        for clips, labels in self.val_loader:
            clips, labels = self._to_device(clips, labels)
            with self._autocast():
                logits = self.model(clips).float()  # no DDP wrapper: no gradient sync needed
            hits = logits.topk(k, 1).indices == labels[:, None]
            totals += torch.stack([F.cross_entropy(logits, labels, reduction="sum"), hits[:, 0].sum(),
                                   hits.any(1).sum(), torch.tensor(float(labels.numel()), device=self.device)])
        if self.dist.enabled:
            tdist.all_reduce(totals)
        loss, top1, top5, n = totals.tolist()
        return {"loss": loss / n, "top1": top1 / n, "top5": top5 / n}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": rng_state(), "loader_generator": self.train_loader.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.train_loader.generator.set_state(state["loader_generator"])
        set_rng_state(state["rng"])


def _open_writer(path: Path, purge_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional dependency ([workflow])
        print("tinlab train: tensorboard is not installed; no TensorBoard scalars", file=sys.stderr)
        return None
    # purge_step drops events a killed run logged after its last checkpoint, so a resumed curve is clean.
    return SummaryWriter(str(path), purge_step=purge_step or None)


def _check_run_dir(out: Path, digest: str, force: bool) -> dict[str, Any] | None:
    """The finished summary if ``out`` holds this config's complete run; error on another config."""
    summary, checkpoint = out / SUMMARY, out / CHECKPOINT
    if force:
        for p in (summary, checkpoint):
            p.unlink(missing_ok=True)  # --force: start over, never resume a stale checkpoint
        return None
    if summary.exists():
        done = json.loads(summary.read_text())
        if done.get("config_hash") == digest:
            return done
        raise ConfigError(f"{out} holds a finished run of another config (hash {done.get('config_hash')} "
                          f"!= {digest}); use another --out or --force")
    return None


def train(cfg: Config, out: str | Path, *, force: bool = False, quiet: bool = True,
          stop_after_epochs: int | None = None,
          on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train ``cfg`` into run directory ``out``, resuming from ``out/checkpoint.pt`` if present.

    Returns the summary (also written to ``out/train_summary.json``), or ``{"stopped": epoch}`` when
    ``stop_after_epochs`` cut the run short. ``on_epoch_end(epoch, record)`` runs after each checkpoint.

    Example (reads a dataset)::

        summary = train(load_config("tiny.yaml"), "runs/tiny")
        summary["final"]["top1"]
    """
    out = Path(out)
    digest = config_hash(cfg)
    device_type = resolve_device(cfg.run.device).type
    dist = init_distributed(device_type)
    done = _check_run_dir(out, digest, force) if dist.is_main else None
    if dist.enabled:  # every rank learns whether rank 0 found the run complete
        box = [done]
        tdist.broadcast_object_list(box)
        done = box[0]
    if done is not None:
        if dist.is_main and not quiet:
            print(f"tinlab train: {out} is complete (config {digest}); nothing to do (--force retrains)")
        return done
    wall = time.perf_counter()
    trainer = Trainer(cfg, dist, quiet)
    start, best, history = 0, {"top1": -1.0, "epoch": -1}, []
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=trainer.device, weights_only=False)
        if state.get("config_hash") != digest:
            raise ConfigError(f"{ckpt_path} was written by another config (hash {state.get('config_hash')} "
                              f"!= {digest}); use another --out or --force")
        trainer.load_state_dict(state)
        start, best, history = state["epoch"], state["best"], state["history"]
        if dist.is_main and not quiet:
            print(f"tinlab train: resuming {out} after epoch {start}")
    if dist.is_main:
        atomic_write_text(out / "config.yaml", dump_config(cfg))
        trainer.writer = _open_writer(out / "tb", start * trainer.iters_per_epoch)
    epochs = cfg.optim.epochs
    val: dict[str, float] = history[-1]["val"] if history else {}
    try:
        for epoch in range(start, epochs):
            stats = trainer.train_epoch(epoch)
            if (epoch + 1) % cfg.run.validate_every == 0 or epoch + 1 == epochs:
                val = trainer.validate()
            record = {"epoch": epoch + 1, "train": stats, "val": val}
            history.append(record)
            improved = bool(val) and val["top1"] > best["top1"]
            if improved:
                best = {"top1": val["top1"], "epoch": epoch + 1}
            if dist.is_main:
                if trainer.writer is not None:
                    w, step = trainer.writer, (epoch + 1) * trainer.iters_per_epoch
                    w.add_scalar("train/top1", stats["top1"], step)
                    for key, value in val.items():
                        w.add_scalar(f"val/{key}", value, step)
                    for name, value in stats["offsets"].items():
                        w.add_scalar(f"offsets/mean_abs/{name}", value, step)
                    w.flush()
                if improved:
                    atomic_save({"model": trainer.model.state_dict(), "epoch": epoch + 1,
                                 "config_hash": digest}, out / BEST)
                atomic_save({"format": CHECKPOINT_FORMAT, "config_hash": digest, "epoch": epoch + 1,
                             "best": best, "history": history, **trainer.state_dict()}, ckpt_path)
            if dist.enabled:
                tdist.barrier()  # nobody runs ahead of a checkpoint it might have to resume from
            if not quiet and dist.is_main:
                print(f"epoch {epoch + 1}/{epochs}: loss {stats['loss']:.4f} train top-1 {stats['top1']:.3f}"
                      + (f" val top-1 {val['top1']:.3f}" if val else "")
                      + f" ({stats['clips_per_s']:.1f} clips/s)", flush=True)
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            if stop_after_epochs is not None and epoch + 1 >= stop_after_epochs and epoch + 1 < epochs:
                return {"stopped": epoch + 1, "config_hash": digest}
    finally:
        if trainer.writer is not None:
            trainer.writer.close()
    seconds = time.perf_counter() - wall
    summary = {
        "config_hash": digest, "epochs": epochs, "final": val, "best": best,
        "train_clips_per_s": sum(h["train"]["clips_per_s"] for h in history) / max(len(history), 1),
        "wall_seconds_this_invocation": seconds, "world_size": dist.world_size, "history": history,
        "provenance": {**provenance(config_to_dict(cfg), trainer.device), "seed": cfg.run.seed},
    }
    if dist.is_main:
        atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def default_out(config_path: str | None, cfg: Config) -> Path:
    """``--out``, else ``run.out``, else ``runs/<config file stem>``."""
    if cfg.run.out:
        return Path(cfg.run.out)
    return Path("runs") / (Path(config_path).stem if config_path else "default")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML run config (default: every default, then the --set overrides)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set optim.lr=0.01 (repeatable)")
    parser.add_argument("--out", help="run directory (default: run.out, else runs/<config stem>)")
    parser.add_argument("--force", action="store_true", help="retrain a complete run from scratch")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    parser.add_argument("--stop-after-epochs", type=int, default=None, metavar="N",
                        help="stop (checkpointed, resumable) once N epochs are done")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
        out = Path(args.out) if args.out else default_out(args.config, cfg)
        summary = train(cfg, out, force=args.force, quiet=args.quiet, stop_after_epochs=args.stop_after_epochs)
    except ConfigError as e:  # errors found after loading (model options, run dir) get the file too
        msg = str(e) if args.config is None or str(args.config) in str(e) else f"{args.config}: {e}"
        print(f"tinlab train: error: {msg}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"tinlab train: error: {args.config or 'config'}: {e}", file=sys.stderr)
        return 1
    except (NonFiniteLossError, ValueError) as e:
        print(f"tinlab train: error: {e}", file=sys.stderr)
        return 1
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
    if not args.quiet and "final" in summary and int(os.environ.get("RANK", "0")) == 0:
        print(f"tinlab train: {out}: final val top-1 {summary['final'].get('top1', float('nan')):.4f}")
    return 0
