"""The errors tinlab raises for things the user can fix, caught once at the command-line boundary.

Every :class:`UserError` message names the file, key or value at fault; ``python -m tinlab`` prints
it as one line and exits with code 2 (``--debug`` shows the traceback instead). A run that fails on
its own terms (training diverged) raises :class:`TrainingFailed` and exits with code 1.

Example:
    >>> try:
    ...     raise ConfigError("run.yaml: key 'optim.lr' = nan is not valid; expected a finite number > 0")
    ... except UserError as e:
    ...     print(one_line(e))
    run.yaml: key 'optim.lr' = nan is not valid; expected a finite number > 0
"""
from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "EvaluationFailed", "RunFolderError", "TrainingFailed",
           "UserError", "diverged_label", "one_line"]


class UserError(Exception):
    """Bad input: a config, a data file, a checkpoint, a command-line value. Exit code 2."""


class ConfigError(UserError, ValueError):
    """A config file or override that does not validate; the message names file, key and value."""


class DataError(UserError, ValueError):
    """A dataset that cannot be read as listed; the message names the list file and line, or the frame."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded safely or does not fit the model; the message names the file."""


class RunFolderError(UserError):
    """A run folder in use by another process, holding another config, or not finished."""


class TrainingFailed(RuntimeError):
    """Training stopped on a non-finite loss, gradient or validation loss (named epoch and iteration).
    The run folder is marked failed; its last checkpoint is intact. Exit code 1.

    ``what`` ("loss", "gradient", "validation loss", "evaluation logits"), ``epoch`` (1-based: the epoch
    during which, or after which for a validation, it went non-finite), ``iteration`` (0-based, within the
    epoch; None for a validation) and ``value`` say what happened: :meth:`details` as a dict, which
    ``tinlab train --record-divergence`` writes into the run's summary (a divergence is then a result)."""

    def __init__(self, message: str, *, what: str | None = None, epoch: int | None = None,
                 iteration: int | None = None, value: float | None = None) -> None:
        super().__init__(message)
        self.what, self.epoch, self.iteration, self.value = what, epoch, iteration, value

    def details(self) -> dict:
        return {"what": self.what, "epoch": self.epoch, "iteration": self.iteration, "value": _finite_or_str(self.value),
                "message": str(self)}


class EvaluationFailed(TrainingFailed):
    """Evaluation produced non-finite logits (the weights diverged): no accuracy is reported. Exit code 1."""


def _finite_or_str(value: float | None) -> float | str | None:
    """JSON has no NaN/inf: those are written as strings."""
    import math

    return value if value is None or math.isfinite(value) else str(value)


def diverged_label(details: dict) -> str:
    """One short line for a table cell: ``diverged at epoch 5 (validation loss)``."""
    epoch = details.get("epoch")
    return f"diverged at epoch {epoch if epoch is not None else '?'} ({details.get('what') or 'non-finite'})"


NonFiniteLossError = TrainingFailed  # the name earlier versions raised


def one_line(error: BaseException) -> str:
    """The message of ``error`` for a terminal: one line, without the traceback that a DataLoader worker
    wraps around an exception raised in a worker process."""
    text = str(error).strip()
    if "Original Traceback" in text:  # torch.utils.data re-raises "Caught X in DataLoader worker ..."
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    if isinstance(error, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    return " ".join(text.split("\n"))
