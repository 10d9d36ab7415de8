"""Run folders and checkpoints: one process at a time, safe loading, nothing half-written.

A run folder (``tinlab train --out DIR``) holds::

    config.yaml           the complete config
    checkpoint.pt         after every epoch: model, optimizer, scheduler, grad scaler, RNG states, history
    model_best.pt         the weights of the best validated epoch
    train_summary.json    written last: its presence means the run finished
    train_failed.json     present while the last attempt failed (divergence), with the reason
    .lock                 held (flock) by the process training into the folder

Checkpoints hold tensors, numbers and strings only, and every load uses
``torch.load(weights_only=True)``: a file that needs more (a pickled object, which can run code) is
refused with a :class:`~tinlab.errors.CheckpointError` naming it.

Example (writes a folder)::

    folder = RunFolder("runs/x")
    with folder.lock():              # a second process gets a RunFolderError naming the first one's PID
        folder.remove_orphans()      # temporary files of killed writes
        state = load_file(folder.checkpoint) if folder.checkpoint.exists() else None
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator


from ..errors import CheckpointError, RunFolderError
from ..utils.io import atomic_save, load_tensors as load_file, read_text, remove_orphans, write_json
from .callbacks import Callback

if TYPE_CHECKING:
    from .loop import Trainer

__all__ = ["CHECKPOINT_FORMAT", "CheckpointSaver", "RunFolder", "load_file", "save"]

CHECKPOINT_FORMAT = 2  # 2: RNG states as tensors (weights_only-loadable); 1 held numpy arrays
def save(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` atomically (a killed run keeps the previous file)."""
    return atomic_save(state, path)


class RunFolder:
    """The files of one training run (module doc) and the lock that keeps a second process out."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config, self.checkpoint, self.best = (self.path / n for n in
                                                   ("config.yaml", "checkpoint.pt", "model_best.pt"))
        self.summary, self.failed = self.path / "train_summary.json", self.path / "train_failed.json"

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @contextmanager
    def lock(self) -> Iterator["RunFolder"]:
        """Hold the folder's lock for the block; another holder is a :class:`RunFolderError`. The lock
        dies with its process, so a killed run never leaves the folder locked."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"--out {self.path} is a file, not a run folder")
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        locked = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise RunFolderError(f"{self.path} is in use by another tinlab train (pid {holder}); wait for "
                                     f"it to finish or train into another --out") from None
            locked = True
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield self
        finally:
            if created and locked:
                self._remove_if_unused()  # a run refused before it wrote anything leaves no folder behind
            os.close(fd)  # releases the flock

    def _remove_if_unused(self) -> None:
        """Remove the folder this process created if it holds nothing but the lock (and empty folders)."""
        try:
            entries = list(self.path.iterdir())
            if all(e.name == ".lock" or (e.is_dir() and not any(e.iterdir())) for e in entries):
                for e in entries:
                    e.unlink() if e.name == ".lock" else e.rmdir()
                self.path.rmdir()
        except OSError:
            pass  # another process started writing here: leave it

    def remove_orphans(self) -> list[Path]:
        """Temporary files that killed writes left behind (call while holding :meth:`lock`)."""
        return remove_orphans(self.path)

    def finished_summary(self) -> dict[str, Any] | None:
        """The summary of a finished run, or None."""
        if not self.summary.is_file():
            return None
        try:
            return json.loads(read_text(self.summary, RunFolderError))
        except ValueError as e:
            raise RunFolderError(f"{self.summary}: unreadable summary ({e}); retrain with --force") from None

    def start_over(self) -> None:
        """Delete what a previous run left (summary, checkpoints, failure mark, TensorBoard events, its
        evaluation): the next run starts fresh, and nothing of the old one mixes into its curves."""
        for p in (self.summary, self.checkpoint, self.best, self.failed, *self.path.glob("metrics*")):
            p.unlink(missing_ok=True)
        shutil.rmtree(self.path / "tb", ignore_errors=True)

    def checkpoint_state(self) -> dict[str, Any]:
        """The resumable checkpoint (on the CPU: RNG states must stay there; the trainer moves the rest). A
        file this tinlab cannot resume (an earlier checkpoint format, damage) is a RunFolderError saying how
        to go on."""
        try:
            state = load_file(self.checkpoint)
        except CheckpointError as e:
            raise RunFolderError(f"{e}; a checkpoint of an earlier tinlab (format 1) or a damaged one cannot be "
                                 f"resumed: retrain with --force (or --restart-if-changed)") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise RunFolderError(f"{self.checkpoint} has checkpoint format {found}, this tinlab writes "
                                 f"{CHECKPOINT_FORMAT}; retrain with --force")
        return state

    def check_config(self, digest: str, force: bool, restart_if_changed: bool = False) -> dict[str, Any] | None:
        """The summary if the folder holds this config's finished run; None if there is nothing finished
        to keep. Another config's run or checkpoint is an error, or, with ``restart_if_changed`` (what
        the workflow asks when a run config changed), is deleted. ``force`` deletes every earlier state."""
        if force:
            self.start_over()
            return None
        try:
            done = self.finished_summary()
            hashes = {done.get("config_hash")} if done is not None else set()
            if self.checkpoint.is_file() and hashes <= {digest}:  # the summary settles it when it differs
                hashes.add(self.checkpoint_state().get("config_hash"))
        except RunFolderError:
            if not restart_if_changed:
                raise
            hashes = {None}  # unreadable: what the workflow asks for is a fresh start
        if hashes - {digest}:
            if not restart_if_changed:
                raise RunFolderError(f"{self.path} holds a run of another config (hash {' '.join(map(str, hashes - {digest}))} "
                                     f"!= {digest}); use another --out, --force, or --restart-if-changed")
            self.start_over()
            return None
        return done

    def mark_failed(self, error: BaseException, **details: Any) -> None:
        """Record why the last attempt failed (removed when a later attempt starts)."""
        write_json(self.failed, {"error": str(error), "type": type(error).__name__, **details})


class CheckpointSaver(Callback):
    """After every epoch (main process): ``model_best.pt`` when validation improved, then the resumable
    ``checkpoint.pt`` with the history so far."""

    def __init__(self, folder: RunFolder, digest: str, code_versions: list[str]) -> None:
        self.folder, self.digest, self.code_versions = folder, digest, code_versions

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: dict[str, Any]) -> None:
        state = trainer.state_dict()  # collective under DDP: every rank's RNG states
        if not trainer.dist.is_main:
            return
        origin = {"config_hash": self.digest, "code_versions": self.code_versions}
        if trainer.best["epoch"] == epoch + 1:  # its own epoch and top-1: a kill between the two saves is seen
            save({"model": trainer.model.state_dict(), "epoch": epoch + 1, "top1": trainer.best["top1"], **origin},
                 self.folder.best)
        save({"format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "best": trainer.best, "history": trainer.history,
              **origin, **state}, self.folder.checkpoint)
