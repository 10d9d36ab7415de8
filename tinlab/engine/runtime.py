"""What every engine command shares: devices, seeding, RNG snapshots, atomic checkpoints, processes.

Distributed runs follow torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``): gloo on CPU,
nccl on CUDA. Example::

    dist = init_distributed("cpu")      # DistInfo(rank=0, world_size=1, ...) outside torchrun
    seed_everything(0)
    atomic_save({"model": model.state_dict()}, "runs/x/checkpoint.pt")
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist

from ..utils.provenance import atomic_write


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun process group if there is one (idempotent); single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not tdist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local)
        tdist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(rank, world, local)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; deterministic kernels where torch has them (warn elsewhere)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict[str, Any]:
    """Every global RNG state a training step may draw from (dropout, third-party augmentations)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`tinlab.utils.provenance.atomic_write`: a killed run leaves the previous
    checkpoint intact, never a truncated one."""
    return atomic_write(path, lambda f: torch.save(obj, f))
