"""The training loop: :class:`Trainer` builds a config's model, loaders, optimizer and schedule, and
:meth:`Trainer.fit` trains them epoch by epoch, calling its callbacks (:mod:`.callbacks`).

Divergence never passes silently: a non-finite loss or gradient at any step, or a non-finite
validation loss, raises :class:`~tinlab.errors.TrainingFailed` naming the epoch and iteration, before
the optimizer applies the step (one device sync per step checks loss and gradient norm together).

Example (reads a dataset)::

    trainer = Trainer(load_config("run.yaml"))
    result = trainer.fit()              # {"history": [...], "best": {...}, "final": {...}}
    trainer.validate()                  # {'top1': ..., 'top5': ..., 'loss': ...}
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import build_dataloader, normalize_clips, set_epoch
from ..errors import ConfigError, TrainingFailed
from .builders import build_model, build_optimizer, build_scheduler, build_split, frozen_batchnorms
from .callbacks import Callback
from .config import Config
from .runtime import DistInfo, amp_dtype, autocast, resolve_device, rng_state, seed_everything, set_rng_state, set_threads

__all__ = ["Trainer"]


class Trainer:
    """Model, loaders, optimizer and schedule of one config, and the loop that trains them."""

    def __init__(self, cfg: Config, dist: DistInfo | None = None, callbacks: Sequence[Callback] = ()) -> None:
        self.cfg, self.dist, self.callbacks = cfg, dist or DistInfo(), list(callbacks)
        self.device = resolve_device(cfg.run.device, self.dist)
        cuda = self.device.type == "cuda"
        self.amp = amp_dtype(self.device, cfg.run.amp)  # bfloat16 / float16 on a GPU (runtime.amp_dtype), else None
        set_threads(cfg.run.threads)
        seed_everything(cfg.run.seed, cfg.run.deterministic, cuda)
        self._build_loaders()
        self.model = build_model(cfg).to(self.device)
        if cfg.run.channels_last and cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.frozen_bn = frozen_batchnorms(self.model, cfg.optim.bn)
        for m in self.frozen_bn:
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, self.iters_per_epoch, cfg.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)  # bf16 needs no scaling
        self.net: nn.Module = self.model
        if self.dist.enabled:
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device] if cuda else None)

    def _build_loaders(self) -> None:
        cfg, world = self.cfg, self.dist.world_size
        if cfg.data.batch_size % world:
            raise ConfigError(f"data.batch_size = {cfg.data.batch_size} is not divisible by the {world} processes")
        batch, shard = cfg.data.batch_size // world, dict(rank=self.dist.rank, world_size=world)
        self.train_set, self.val_set = build_split(cfg, "train"), build_split(cfg, "val")
        self.train_loader = build_dataloader(self.train_set, batch, True, cfg.data.num_workers, cfg.run.seed, **shard)
        self.val_loader = build_dataloader(self.val_set, batch, False, cfg.data.num_workers, cfg.run.seed, **shard)
        self.iters_per_epoch = len(self.train_loader)
        if self.iters_per_epoch == 0:
            raise ConfigError(f"data.batch_size = {cfg.data.batch_size} exceeds the {len(self.train_set)} training "
                              f"videos of {self.train_set.list_file}: no full batch")

    def _emit(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _autocast(self):
        return autocast(self.device, self.amp)

    def _all_min(self, value: Tensor) -> Tensor:
        if self.dist.enabled:  # every rank must stop together, or the others hang in all-reduce
            tdist.all_reduce(value, op=tdist.ReduceOp.MIN)
        return value

    def _step(self, clips: Tensor, labels: Tensor, epoch: int, it: int) -> tuple[float, Tensor]:
        """Forward, backward, finite check, clipping, optimizer and schedule step; (loss, logits). The
        loss and the finite flag leave the device together: one sync per step."""
        with self._autocast():
            logits = self.net(clips)
            loss = F.cross_entropy(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = self.cfg.optim.clip_grad
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
        norm = nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        finite = torch.isfinite(loss.detach())
        if not self.scaler.is_enabled():  # under fp16 an inf gradient is the scaler's business: it skips the step
            finite &= torch.isfinite(norm)
        flag, loss_value = torch.stack([self._all_min(finite.float()), loss.detach().float()]).tolist()
        if not flag:
            lr = self.scheduler.get_last_lr()[0]
            what = "loss" if not math.isfinite(loss_value) else "gradient"
            raise TrainingFailed(f"non-finite {what} (loss {loss_value:.4g}, gradient norm {norm.item():.4g}) at "
                                 f"epoch {epoch + 1} iteration {it} (epoch 1-based, iteration 0-based; lr {lr:.3g}): "
                                 f"lower optim.lr or check the data; the last checkpoint is intact",
                                 what=what, epoch=epoch + 1, iteration=it,
                                 value=loss_value if what == "loss" else norm.item())
        if clip > 0:
            nn.utils.clip_grads_with_norm_(self.params, clip, norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss_value, logits.detach()

    def _set_train_mode(self) -> None:
        self.net.train()
        for m in self.frozen_bn:
            m.eval()  # keep running statistics fixed

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch; returns mean loss, top-1, clips/s and the seconds spent waiting for data."""
        set_epoch(self.train_loader, epoch)  # the data layer's per-epoch randomness
        self._set_train_mode()
        correct = torch.zeros((), device=self.device, dtype=torch.float64)  # read once, at the end
        loss_sum, seen, data_s, start = 0.0, 0, 0.0, time.perf_counter()
        tick = start
        for it, (clips, labels) in enumerate(self.train_loader):
            data_s += time.perf_counter() - tick
            clips = normalize_clips(clips.to(self.device, non_blocking=True))  # uint8 until here
            labels = labels.to(self.device, non_blocking=True)
            lr = self.scheduler.get_last_lr()[0]
            loss, logits = self._step(clips, labels, epoch, it)
            n = labels.numel()
            loss_sum, seen = loss_sum + loss * n, seen + n
            correct += (logits.argmax(1) == labels).sum()
            self._emit("on_step_end", epoch, it, loss, lr)
            tick = time.perf_counter()
        totals = torch.stack([torch.tensor(loss_sum, dtype=torch.float64, device=self.device), correct,
                              torch.tensor(float(seen), dtype=torch.float64, device=self.device)])
        if self.dist.enabled:
            tdist.all_reduce(totals)
        loss_sum, correct, seen = totals.tolist()
        seconds = time.perf_counter() - start
        return {"loss": loss_sum / seen, "top1": correct / seen, "clips_per_s": seen / seconds,
                "seconds": seconds, "data_seconds": data_s}

    @torch.no_grad()
    def validate(self, epoch: int | None = None) -> dict[str, float]:
        """Single-view top-1/top-5/loss on the validation split (all ranks together under DDP); a
        non-finite loss raises :class:`~tinlab.errors.TrainingFailed`."""
        self.net.eval()
        k = min(5, self.model.num_classes)
        totals = torch.zeros(4, device=self.device, dtype=torch.float64)  # loss sum, top1, top5, count
        for clips, labels in self.val_loader:
            clips = normalize_clips(clips.to(self.device, non_blocking=True))
            labels = labels.to(self.device, non_blocking=True)
            with self._autocast():
                logits = self.model(clips).float()  # no DDP wrapper: no gradient sync needed
            hits = logits.topk(k, 1).indices == labels[:, None]
            totals += torch.stack([F.cross_entropy(logits, labels, reduction="sum").double(), hits[:, 0].sum().double(),
                                   hits.any(1).sum().double(), torch.tensor(float(labels.numel()), dtype=torch.float64,
                                                                            device=self.device)])
        if self.dist.enabled:
            tdist.all_reduce(totals)
        loss, top1, top5, n = totals.tolist()
        if not math.isfinite(loss):
            raise TrainingFailed(f"non-finite validation loss ({loss / n:.4g}) after epoch "
                                 f"{'?' if epoch is None else epoch + 1}: the weights diverged; lower optim.lr",
                                 what="validation loss", epoch=None if epoch is None else epoch + 1, value=loss / n)
        return {"loss": loss / n, "top1": top1 / n, "top5": top5 / n}

    def fit(self, start_epoch: int = 0, history: list[dict[str, Any]] | None = None,
            best: dict[str, Any] | None = None, stop_after_epochs: int | None = None) -> dict[str, Any]:
        """Train from ``start_epoch`` (a resumed run passes its history and best) to ``optim.epochs``.
        Returns ``{"history", "best", "final", "stopped"}``; ``stopped`` is the epoch count where
        ``stop_after_epochs`` cut the run short, else None. Callbacks read ``trainer.history`` and
        ``trainer.best`` (``{"top1", "epoch"}`` of the best validated epoch)."""
        self.history, self.best = list(history or []), dict(best or {"top1": -1.0, "epoch": -1})
        epochs, val, stopped = self.cfg.optim.epochs, self.history[-1]["val"] if self.history else {}, None
        self._emit("on_fit_start", start_epoch)
        try:
            for epoch in range(start_epoch, epochs):
                self._emit("on_epoch_start", epoch)
                stats = self.train_epoch(epoch)
                self._emit("on_train_end", epoch, stats)
                validated = (epoch + 1) % self.cfg.run.validate_every == 0 or epoch + 1 == epochs
                now = self.validate(epoch) if validated else {}
                val = now or val
                self.history.append({"epoch": epoch + 1, "train": stats, "val": now})  # only what was measured
                if now and now["top1"] > self.best["top1"]:
                    self.best = {"top1": now["top1"], "epoch": epoch + 1}
                self._emit("on_epoch_end", epoch, self.history[-1])
                if self.dist.enabled:
                    tdist.barrier()  # nobody runs ahead of a checkpoint it might have to resume from
                if stop_after_epochs is not None and epoch + 1 >= stop_after_epochs and epoch + 1 < epochs:
                    stopped = epoch + 1
                    break
        finally:
            self._emit("on_fit_end")
        return {"history": self.history, "best": self.best, "final": val, "stopped": stopped}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs; collective under DDP (every rank's RNG states are gathered,
        each rank restores its own), so every rank calls it."""
        rng = [rng_state()]
        if self.dist.enabled:
            rng = [None] * self.dist.world_size
            tdist.all_gather_object(rng, rng_state())
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": rng, "loader_generator": self.train_loader.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (read on the CPU: the RNG states must stay there; model and optimizer
        move their tensors to their own device)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        # else: a checkpoint from bf16 (or CPU) training has no scale to restore; an fp16 GPU starts its
        # scaler fresh (an enabled GradScaler refuses the empty state a disabled one saved)
        self.train_loader.generator.set_state(state["loader_generator"])
        rng = state["rng"]
        set_rng_state(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
