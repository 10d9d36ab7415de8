"""Files in and out: atomic writes that never leave a half-written file, strict YAML and text reading.

Every result, checkpoint and figure tinlab writes goes through :func:`atomic_write`: the bytes go to
a temporary sibling ``.<name>.<pid>.<random>.tmp``, are flushed to disk, and the temporary file is
renamed onto the target. A killed writer leaves the previous file intact and at most one temporary
file, which the next write of the same file (or :func:`remove_orphans` on a run folder) removes once
the process that wrote it is gone.

Example (writes a file)::

    atomic_write_text("results/table1.csv", "model,top1\\n")
    config = read_yaml("run.yaml")          # duplicate keys and bad UTF-8 are errors naming file:line
"""
from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import yaml

from ..errors import CheckpointError, ConfigError, DataError

__all__ = ["atomic_save", "atomic_write", "atomic_write_text", "current_umask", "load_tensors", "read_text",
           "read_yaml", "remove_orphans", "write_csv", "write_json"]

_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (a name that is no pid counts as alive: kept)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # someone else's process, or no real pid
        return True
    return True


def remove_orphans(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder`` (only those of ``name`` if
    given); a temporary file of a process that is still running is kept. Returns what was removed.
    Processes are those of this host: two machines writing into one folder need their own run folders."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for entry in os.scandir(folder):
        m = _TMP.match(entry.name)
        if m and (name is None or m["name"] == name) and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """``write(f)`` into a temporary file in the same folder, fsync, then ``os.replace`` onto ``path``.

    The file gets the permissions of an ordinary new file (mkstemp makes 0600 ones; results and
    checkpoints are meant to be shared). Orphans of earlier killed writes of ``path`` are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error_in(e)
        if cause is None:
            raise
        # a full disk, a quota, an I/O error: one error naming the file (torch.save wraps the OSError
        # in a RuntimeError of its zip writer, so the chain is searched); nothing was replaced
        raise OSError(cause.errno, f"{cause.strerror or cause}; nothing was replaced (the previous {path.name}, if "
                                   f"any, is intact)", str(path)) from None
    return path


def _os_error_in(error: BaseException) -> OSError | None:
    """The OSError with an errno that ``error`` is, or that it was raised while handling (None if none)."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno is not None:
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON, atomically (values JSON cannot hold are written as strings)."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically: a killed run leaves the previous checkpoint intact."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


TRUST_HINT = ("if you trust the file, load it yourself with torch.load(path, weights_only=False) and save "
              "its state_dict of tensors with torch.save (docs/troubleshooting.md: 'Trust')")


def load_tensors(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and containers of them, never
    a pickled object (which can run code). A missing, truncated, corrupt or unsafe file raises a
    :class:`~tinlab.errors.CheckpointError` that names it."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).splitlines()]
        detail = next((line for line in lines if "GLOBAL" in line or "global" in line), None)
        if detail is not None:  # an object the safe unpickler will not build
            hint = (" (an MMAction2 training checkpoint keeps its message_hub: publish it first with MMAction2's "
                    "tools/misc/publish_model.py, which keeps meta and state_dict)" if "mmengine" in detail else "")
            raise CheckpointError(f"{path}: refused: it holds pickled Python objects, which can run code when "
                                  f"loaded ({detail[:200]}){hint}; tinlab loads tensors, numbers and strings only; "
                                  f"{TRUST_HINT}") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{' '.join(lines)[:300]}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{' '.join(str(e).split())[:300]}") from None


def write_csv(frame: "pandas.DataFrame", path: str | Path, prov: dict[str, Any]) -> Path:  # noqa: F821
    """Write a result table atomically, with its provenance in a sidecar JSON written first."""
    from .provenance import provenance_path

    sidecar = provenance_path(path)
    before = sidecar.read_bytes() if sidecar.is_file() and Path(path).is_file() else None
    write_json(sidecar, prov)
    try:
        return atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g"))
    except BaseException:  # the table was not replaced: neither is its provenance
        try:
            if before is None:
                sidecar.unlink(missing_ok=True)
            else:
                atomic_write(sidecar, lambda f: f.write(before))
        except OSError:
            sidecar.unlink(missing_ok=True)
        raise


def read_text(path: str | Path, error: type[Exception] = DataError) -> str:
    """A UTF-8 text file; a byte sequence that is not UTF-8 raises ``error`` naming the file and line."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start})") from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def parse_yaml(text: str, where: str) -> Any:
    """YAML ``text`` with duplicate keys refused; errors are :class:`ConfigError` naming ``where``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(e).split())}") from None


def read_yaml(path: str | Path) -> Any:
    """A YAML file, strictly: not UTF-8, not YAML or a key given twice is a :class:`ConfigError` naming
    the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return parse_yaml(read_text(path, ConfigError), str(path))
