"""``python -m tinlab train --config CFG [--set key=value ...] [--out DIR]``: train one run, resumably.

The run folder (:mod:`.checkpoint`) gets ``config.yaml``, ``checkpoint.pt`` after every epoch,
``model_best.pt``, ``tb/`` (TensorBoard scalars) and, once finished, ``train_summary.json``.
Rerunning the same command resumes from the checkpoint and, on CPU, ends with bit-identical weights;
rerunning a finished run does nothing unless ``--force``; a second process training into the same
folder is refused while the first runs. Under ``torchrun`` the same command trains with
DistributedDataParallel; only rank 0 writes.

Example::

    python -m tinlab train --config configs/tin.yaml --set optim.epochs=2 --out runs/tin-smoke
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

import torch.distributed as tdist

from ..errors import ConfigError, RunFolderError, TrainingFailed, UserError, diverged_label
from ..utils.io import atomic_write_text, write_json
from ..utils.cli import positive_float, positive_int
from ..utils.provenance import code_version, provenance
from .callbacks import LogLines, OffsetMonitor, ProgressBar, TensorBoard
from .checkpoint import CheckpointSaver, RunFolder, load_file
from .config import Config, config_hash, config_to_dict, dump_config, load_config
from .loop import Trainer
from .runtime import DistInfo, init_distributed, resolve_device

__all__ = ["train"]


def _on_main(dist: DistInfo, fn: Callable[[], Any]) -> Any:
    """``fn()`` run on rank 0; its result, or the user error it raised, on every rank (a failure of
    rank 0 alone would leave the other ranks waiting in the next collective)."""
    result, error = None, None
    if dist.is_main:
        try:
            result = fn()
        except UserError as e:
            error = e
    if dist.enabled:
        box = [(result, None if error is None else (type(error), str(error)))]
        tdist.broadcast_object_list(box)
        result, raised = box[0]
        if raised is not None and error is None:
            error = raised[0](raised[1])
    if error is not None:
        raise error
    return result


def _resume(trainer: Trainer, folder: RunFolder, digest: str) -> tuple[int, list, dict | None, list[str]]:
    """(start epoch, history, best, code versions so far) from the folder's checkpoint, or a fresh start."""
    if not _on_main(trainer.dist, folder.checkpoint.exists):
        return 0, [], None, []
    if not folder.checkpoint.exists():  # rank 0 sees it, this rank does not: no shared filesystem
        raise RunFolderError(f"rank {trainer.dist.rank}: no {folder.checkpoint} to resume from; the processes "
                             f"of one run need a shared filesystem")
    state = folder.checkpoint_state()
    trainer.load_state_dict(state)
    best = state["best"]
    if folder.best.exists():  # killed between the two saves: model_best.pt is the truth about its weights
        recorded = load_file(folder.best)
        if recorded.get("epoch", -1) > best["epoch"] and "top1" in recorded:
            best = {"top1": recorded["top1"], "epoch": recorded["epoch"]}
    return state["epoch"], state["history"], best, list(state.get("code_versions", []))


def _summary(cfg: Config, digest: str, result: dict[str, Any], trainer: Trainer, wall: float,
             code_versions: list[str]) -> dict[str, Any]:
    history = result["history"]
    diverged = {"diverged": result["diverged"]} if result.get("diverged") else {}
    return {"config_hash": digest, "epochs": cfg.optim.epochs, **diverged, "final": result["final"],
            "best": result["best"],
            "train_clips_per_s": sum(h["train"]["clips_per_s"] for h in history) / max(len(history), 1),
            "wall_seconds_this_invocation": wall, "world_size": trainer.dist.world_size, "history": history,
            "provenance": {**provenance(config_to_dict(cfg), trainer.device), "seed": cfg.run.seed,
                           "amp": str(trainer.amp).replace("torch.", "") if trainer.amp else "off",
                           "code_versions": code_versions}}


def train(cfg: Config, out: str | Path, *, force: bool = False, quiet: bool = True,
          stop_after_epochs: int | None = None, restart_if_changed: bool = False,
          record_divergence: bool = False, log_every: float | None = 60.0) -> dict[str, Any]:
    """Train ``cfg`` into run folder ``out``, resuming from its checkpoint if there is one.

    Returns the summary (also written to ``out/train_summary.json``), or ``{"stopped": epoch,
    "config_hash": ...}`` when ``stop_after_epochs`` cut the run short. A run that diverges raises
    :class:`~tinlab.errors.TrainingFailed` and leaves ``out/train_failed.json``, not a summary; with
    ``record_divergence`` (what the workflow asks: a divergence is a result) it writes the summary instead,
    with ``diverged`` = what went non-finite, the epoch (1-based) and iteration, and the value, the
    history up to there and no ``final`` accuracy. A folder holding another config's run is refused, or
    started over with ``restart_if_changed``.

    Example (reads a dataset)::

        summary = train(load_config("tiny.yaml"), "runs/tiny")
        summary["final"]["top1"]
    """
    folder, digest, wall = RunFolder(out), config_hash(cfg), time.perf_counter()
    dist = init_distributed(resolve_device(cfg.run.device).type)
    with ExitStack() as held:
        def claim() -> dict[str, Any] | None:  # rank 0 holds the folder for the whole run
            held.enter_context(folder.lock())
            folder.remove_orphans()
            return folder.check_config(digest, force, restart_if_changed)

        done = _on_main(dist, claim)
        if done is not None:
            if dist.is_main and not quiet:
                print(f"tinlab train: {out} is complete (config {digest}); nothing to do (--force retrains)")
            return done
        trainer, saver, start, history, best = _start(cfg, folder, digest, dist, quiet, log_every)
        try:
            result = trainer.fit(start, history, best, stop_after_epochs)
        except OSError as e:  # a full disk while writing a checkpoint: the last complete one is intact
            if dist.is_main:
                try:
                    folder.mark_failed(e, config_hash=digest, epochs_done=len(trainer.history), resumable=True)
                except OSError:
                    pass  # the disk is full: the error itself says what happened
            raise
        except TrainingFailed as e:
            if not record_divergence:
                if dist.is_main:
                    folder.mark_failed(e, config_hash=digest, epochs_done=len(trainer.history))
                raise
            result = {"history": trainer.history, "best": trainer.best, "final": {}, "stopped": None,
                      "diverged": {**e.details(), "epochs_done": len(trainer.history)}}
        if result["stopped"] is not None:
            return {"stopped": result["stopped"], "config_hash": digest}
        summary = _summary(cfg, digest, result, trainer, time.perf_counter() - wall, saver.code_versions)
        if dist.is_main:
            write_json(folder.summary, summary)
    return summary


def _start(cfg: Config, folder: RunFolder, digest: str, dist: DistInfo, quiet: bool,
           log_every: float | None = 60.0) -> tuple:
    """(trainer, checkpoint saver, start epoch, history, best): built, resumed, the folder prepared."""
    saver = CheckpointSaver(folder, digest, [])
    trainer = Trainer(cfg, dist, [saver, OffsetMonitor(), TensorBoard(folder.path / "tb")]
                      + ([] if quiet else [ProgressBar(), LogLines(log_every)]))
    start, history, best, versions = _resume(trainer, folder, digest)
    saver.code_versions = versions + [v for v in [code_version()] if v not in versions]
    if dist.is_main:
        atomic_write_text(folder.config, dump_config(cfg))
        folder.failed.unlink(missing_ok=True)
        if cfg.optim.bn != "train" and not cfg.model.pretrained and not start:
            print(f"tinlab train: warning: optim.bn = {cfg.optim.bn!r} freezes BatchNorm at its initialisation "
                  f"(identity) because model.pretrained is not set; the paper recipe assumes an ImageNet or "
                  f"Kinetics trunk (set model.pretrained, or optim.bn: train from scratch)", file=sys.stderr)
        if start:
            print(f"tinlab train: resuming {folder.path} after epoch {start}", flush=True)
    return trainer, saver, start, history, best


def default_out(config_path: str | None, cfg: Config) -> Path:
    """``--out``, else ``run.out``, else ``runs/<config file stem>``."""
    if cfg.run.out:
        return Path(cfg.run.out)
    return Path("runs") / (Path(config_path).stem if config_path else "default")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML run config (default: every default, then the --set overrides)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set optim.lr=0.01 (repeatable)")
    parser.add_argument("--out", help="run folder (default: run.out, else runs/<config stem>)")
    parser.add_argument("--force", action="store_true", help="retrain a complete run from scratch")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    parser.add_argument("--log-every", type=positive_float, default=60.0, metavar="SECONDS",
                        help="within an epoch, a line (iteration, loss, lr, clips/s, time left) every SECONDS "
                             "(default 60); one line per epoch always, unless --quiet")
    parser.add_argument("--stop-after-epochs", type=positive_int, default=None, metavar="N",
                        help="stop (checkpointed, resumable) once N epochs are done")
    parser.add_argument("--restart-if-changed", action="store_true",
                        help="start over (instead of refusing) when --out holds a run of another config")
    parser.add_argument("--record-divergence", action="store_true",
                        help="a run that goes non-finite is a result: write train_summary.json with 'diverged' "
                             "(what, epoch, iteration) and exit 0, instead of exit 1 and train_failed.json")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else default_out(args.config, cfg)
    try:
        summary = train(cfg, out, force=args.force, quiet=args.quiet, stop_after_epochs=args.stop_after_epochs,
                        restart_if_changed=args.restart_if_changed, record_divergence=args.record_divergence,
                        log_every=args.log_every)
    except ConfigError as e:  # found after loading (a model option, the data root): name the file too
        if args.config is None or str(args.config) in str(e):
            raise
        raise ConfigError(f"{args.config}: {e}") from None
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
    if summary.get("diverged") and int(os.environ.get("RANK", "0")) == 0:
        print(f"tinlab train: {out}: {diverged_label(summary['diverged'])}: {summary['diverged']['message']}; "
              f"recorded in train_summary.json (a result: --force trains it again)")
    elif not args.quiet and "final" in summary and int(os.environ.get("RANK", "0")) == 0:
        print(f"tinlab train: {out}: final val top-1 {100 * summary['final'].get('top1', float('nan')):.1f}%")
    return 0
