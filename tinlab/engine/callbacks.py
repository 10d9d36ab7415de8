"""What a training loop reports, as callbacks: progress bar, TensorBoard, TIN offsets, checkpoints.

:class:`~tinlab.engine.loop.Trainer` calls, in order, for every callback::

    on_fit_start(trainer, start_epoch)
    on_epoch_start(trainer, epoch)                  # 0-based epoch
    on_step_end(trainer, epoch, iteration, loss, lr)   # loss: a float (read with the step's one sync)
    on_train_end(trainer, epoch, stats)             # after the epoch's steps, before validation
    on_epoch_end(trainer, epoch, record)            # record = {"epoch", "train", "val"}, after validation
    on_fit_end(trainer)                             # also when training fails

TIN and r-TCN offsets and frame weights are read by :class:`InterlaceProbe` through forward hooks on
the modules' ``offset_net`` and ``weight_net``: nothing in the engine touches an op's internals.

Example (reads a dataset)::

    trainer = Trainer(cfg, callbacks=[OffsetMonitor(), ProgressBar()])
    trainer.fit()
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.distributed as tdist
from torch import Tensor, nn

if TYPE_CHECKING:
    from .loop import Trainer

__all__ = ["Callback", "InterlaceProbe", "OffsetMonitor", "ProgressBar", "TensorBoard"]


class Callback:
    """Base class: every hook does nothing."""

    def on_fit_start(self, trainer: "Trainer", start_epoch: int) -> None: ...
    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None: ...
    def on_step_end(self, trainer: "Trainer", epoch: int, iteration: int, loss: float, lr: float) -> None: ...
    def on_train_end(self, trainer: "Trainer", epoch: int, stats: dict[str, Any]) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...


class InterlaceProbe:
    """Running sums of every TIN / r-TCN layer's offsets (N, G) and frame weights (N, T, G), collected by
    forward hooks on its ``offset_net`` and ``weight_net`` while :attr:`active` (each net converts its
    pre-activation with its ``to_offsets`` / ``to_weights``); on the device, read once (no sync per layer
    and batch).

    Example:
        >>> import tinlab
        >>> m = tinlab.create_model("tin", backbone="resnet18", num_classes=4, num_segments=4,
        ...                         width_mult=0.25, small_stem=True)
        >>> probe = InterlaceProbe(m)
        >>> _ = m(torch.randn(2, 4, 3, 16, 16))
        >>> len(probe.layers), probe.count
        (8, 2)
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [name for name, _ in model.interlace_modules()] if hasattr(model, "interlace_modules") else []
        self._watched = list(model.interlace_modules()) if self.layers else []
        self._handles: list = []
        self.reset()
        self.active = True

    @property
    def active(self) -> bool:
        """Whether forwards are recorded. The hooks exist only while active: on CUDA a TIN layer whose nets
        no hook watches runs them fused (``TemporalInterlace._fuse_nets``), so unsampled steps cost nothing."""
        return bool(self._handles)

    @active.setter
    def active(self, on: bool) -> None:
        if on and not self._handles:
            for name, m in self._watched:
                self._handles.append(m.offset_net.register_forward_hook(self._hook(name, "offsets")))
                if getattr(m, "weight_net", None) is not None:
                    self._handles.append(m.weight_net.register_forward_hook(self._hook(name, "weights")))
        elif not on:
            self.remove()

    def _hook(self, layer: str, kind: str):
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            # The nets return pre-activations; their own to_offsets / to_weights give the quantities.
            convert = module.to_offsets if kind == "offsets" else module.to_weights
            out = convert(output.detach()).double()
            sums = self.sums[layer]
            sums[kind] = sums.get(kind, 0) + out.sum(0)
            if kind == "offsets":
                sums["abs"] = sums.get("abs", 0) + out.abs().sum(0)
                if layer == self.layers[0]:
                    self.count += out.shape[0]
        return hook

    def reset(self) -> None:
        self.sums: dict[str, dict[str, Tensor]] = {name: {} for name in self.layers}
        self.count = 0

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def mean_abs_offsets(self, all_reduce: bool = False) -> dict[str, float]:
        """Mean |offset| per layer since :meth:`reset` (over videos and groups; summed over processes)."""
        if not self.layers or not self.count:
            return {}
        totals = torch.stack([self.sums[n]["abs"].mean() for n in self.layers]
                             + [torch.tensor(float(self.count), dtype=torch.float64,
                                             device=self.sums[self.layers[0]]["abs"].device)])
        if all_reduce:
            tdist.all_reduce(totals)
        values = (totals[:-1] / totals[-1]).tolist()
        return dict(zip(self.layers, values))

    def table(self) -> pd.DataFrame:
        """Mean offsets per layer and group, and mean weights per layer, frame and group (TIN Figure 5)."""
        rows = []
        for index, name in enumerate(self.layers):
            sums = self.sums[name]
            for g, v in enumerate((sums["offsets"] / self.count).tolist()):
                rows.append({"layer": name, "layer_index": index, "kind": "offset", "group": g, "frame": None,
                             "value": v})
            for t, per_group in enumerate((sums["weights"] / self.count).tolist() if "weights" in sums else []):
                for g, v in enumerate(per_group):
                    rows.append({"layer": name, "layer_index": index, "kind": "weight", "group": g, "frame": t,
                                 "value": v})
        return pd.DataFrame(rows, columns=["layer", "layer_index", "kind", "group", "frame", "value"])


class OffsetMonitor(Callback):
    """Adds ``offsets`` (mean |offset| per TIN layer) to the epoch stats, sampled on the first batch of an
    epoch and every ``every``-th after it: a sampled step costs ~14 small ops per TIN layer (a kernel launch
    each on a GPU), the others nothing."""

    def __init__(self, every: int = 10) -> None:
        self.every = every

    def on_fit_start(self, trainer: "Trainer", start_epoch: int) -> None:
        self.probe = InterlaceProbe(trainer.model)

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        self.probe.reset()
        self.probe.active = True

    def on_step_end(self, trainer: "Trainer", epoch: int, iteration: int, loss: float, lr: float) -> None:
        self.probe.active = (iteration + 1) % self.every == 0  # for the next step

    def on_train_end(self, trainer: "Trainer", epoch: int, stats: dict[str, Any]) -> None:
        self.probe.active = False  # validation forwards are not training statistics
        stats["offsets"] = self.probe.mean_abs_offsets(all_reduce=trainer.dist.enabled)

    def on_fit_end(self, trainer: "Trainer") -> None:
        self.probe.remove()


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss (on a terminal, main process only)."""

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=trainer.iters_per_epoch, desc=f"epoch {epoch + 1}/{trainer.cfg.optim.epochs}",
                        unit="batch", leave=False, disable=not sys.stderr.isatty() or not trainer.dist.is_main)

    def on_step_end(self, trainer: "Trainer", epoch: int, iteration: int, loss: float, lr: float) -> None:
        self.bar.update()
        if not self.bar.disable:
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.3g}")

    def on_train_end(self, trainer: "Trainer", epoch: int, stats: dict[str, Any]) -> None:
        self.bar.close()


class LogLines(Callback):
    """Plain lines a log file can hold (main process only): one per epoch (loss, train and val top-1 in %,
    clips/s, time left for the run) and, within an epoch, one every ``every_s`` seconds (iteration, loss,
    lr, clips/s, time left for the epoch). ``tail -f`` on a workflow job's log follows the training."""

    def __init__(self, every_s: float | None = 60.0) -> None:
        self.every_s = every_s

    def on_fit_start(self, trainer: "Trainer", start_epoch: int) -> None:
        self.fit_start, self.start_epoch = time.perf_counter(), start_epoch

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        self.epoch_start = self.last = time.perf_counter()

    def on_step_end(self, trainer: "Trainer", epoch: int, iteration: int, loss: float, lr: float) -> None:
        now = time.perf_counter()
        if not trainer.dist.is_main or self.every_s is None or now - self.last < self.every_s:
            return
        self.last, done, total = now, iteration + 1, trainer.iters_per_epoch
        clips = done * trainer.cfg.data.batch_size * trainer.dist.world_size
        rate = clips / max(now - self.epoch_start, 1e-9)
        eta = (now - self.epoch_start) / done * (total - done)
        print(f"epoch {epoch + 1}/{trainer.cfg.optim.epochs} iteration {done}/{total}: loss {loss:.4f} lr {lr:.3g} "
              f"({rate:.1f} clips/s, epoch ends in {_duration(eta)})", flush=True)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: dict[str, Any]) -> None:
        if not trainer.dist.is_main:
            return
        val, stats, epochs = record["val"], record["train"], trainer.cfg.optim.epochs
        per_epoch = (time.perf_counter() - self.fit_start) / (epoch + 1 - self.start_epoch)
        print(f"epoch {epoch + 1}/{epochs}: loss {stats['loss']:.4f} train top-1 {100 * stats['top1']:.1f}%"
              + (f" val top-1 {100 * val['top1']:.1f}% val loss {val['loss']:.4g}" if val else "")
              + f" ({stats['clips_per_s']:.1f} clips/s; run ends in {_duration(per_epoch * (epochs - epoch - 1))})",
              flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class TensorBoard(Callback):
    """Scalars under ``folder``: train/loss and train/lr per step; train/top1, val/*, offsets/* per epoch.
    A resumed run purges the events a killed run logged after its last checkpoint."""

    def __init__(self, folder: str | Path) -> None:
        self.folder, self.writer = Path(folder), None

    def on_fit_start(self, trainer: "Trainer", start_epoch: int) -> None:
        if not trainer.dist.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional dependency ([workflow])
            print("tinlab train: tensorboard is not installed; no TensorBoard scalars", file=sys.stderr)
            return
        purge = start_epoch * trainer.iters_per_epoch
        self.writer = SummaryWriter(str(self.folder), purge_step=purge or None)

    def on_step_end(self, trainer: "Trainer", epoch: int, iteration: int, loss: float, lr: float) -> None:
        if self.writer is not None:
            step = epoch * trainer.iters_per_epoch + iteration
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = (epoch + 1) * trainer.iters_per_epoch
        # accuracies in percent, as the tables and the console print them (tags say so)
        self.writer.add_scalar("train/top1_percent", 100 * record["train"]["top1"], step)
        for key, value in record["val"].items():
            percent = key in ("top1", "top5")
            self.writer.add_scalar(f"val/{key}_percent" if percent else f"val/{key}", 100 * value if percent else value,
                                   step)
        for name, value in record["train"].get("offsets", {}).items():
            self.writer.add_scalar(f"offsets/mean_abs/{name}", value, step)
        self.writer.flush()

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.writer is not None:
            self.writer.close()
