"""What every engine command shares: devices, processes, seeding and RNG snapshots.

Distributed runs follow torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``): gloo on CPU,
nccl on CUDA, each process on GPU ``LOCAL_RANK``. Example::

    dist = init_distributed("cpu")      # DistInfo(rank=0, world_size=1, ...) outside torchrun
    device = resolve_device("auto", dist)
    seed_everything(0)
"""
from __future__ import annotations

import os
import random
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

import numpy as np
import torch
import torch.distributed as tdist

from ..errors import ConfigError

__all__ = ["DistInfo", "amp_dtype", "autocast", "init_distributed", "resolve_device", "rng_state", "seed_everything",
           "set_rng_state", "set_threads"]


def amp_dtype(device: torch.device, enabled: bool = True, requested: torch.dtype | None = None) -> torch.dtype | None:
    """The one mixed-precision policy of training, evaluation and latency: on a GPU, bfloat16 where it
    has bfloat16 arithmetic, else float16 (training then scales the loss with a GradScaler); none on
    the CPU or when ``enabled`` is off. A ``requested`` bfloat16 on a GPU without it falls back to
    float16 with a warning; a requested float32 means none.

    Example:
        >>> amp_dtype(torch.device("cpu")) is None
        True
    """
    if not enabled or device.type != "cuda" or requested == torch.float32:
        return None
    bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    if requested == torch.bfloat16 and not bf16:
        warnings.warn(f"{torch.cuda.get_device_name(device)} has no bfloat16 arithmetic: using float16",
                      RuntimeWarning, stacklevel=2)
    if requested == torch.float16:
        return torch.float16
    return torch.bfloat16 if bf16 else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    """``torch.autocast`` at ``dtype`` on ``device``, or nothing when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


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


def resolve_device(name: str, dist: DistInfo | None = None) -> torch.device:
    """``auto`` -> cuda when available, else cpu; a CUDA device is the process's own GPU (``LOCAL_RANK``
    under torchrun). ``cuda`` without a GPU is an error naming ``run.device``, not a silent CPU run."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("run.device = 'cuda' but no CUDA device is available (torch "
                              f"{torch.__version__}); set run.device to 'cpu' or 'auto'")
        return torch.device("cuda", (dist or DistInfo()).local_rank)
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


def set_threads(threads: int) -> None:
    """``run.threads``: torch's intra-op thread count (0 keeps torch's default, one per core). The count
    is part of what a CPU run computes: another count sums in another order."""
    if threads > 0:
        torch.set_num_threads(threads)


def seed_everything(seed: int, deterministic: bool = True, cuda: bool = False) -> None:
    """Seed python, numpy and torch. ``deterministic`` (``run.deterministic``): deterministic kernels where
    torch has them (a warning names the others), on a GPU too: cuDNN's deterministic algorithms, no
    autotuning, and cuBLAS's fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, unless set). Otherwise, on a
    GPU, cuDNN autotunes its convolutions for the fixed shapes of training (``cudnn.benchmark``)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = cuda and not deterministic
    if deterministic and cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def rng_state() -> dict[str, Any]:
    """Every global RNG state a training step may draw from (dropout, third-party augmentations), as
    tensors, numbers and strings only, so a checkpoint loads with ``torch.load(weights_only=True)``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`. CUDA states are restored for the devices both runs have (a run resumed
    on fewer visible GPUs keeps its first ones)."""
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        for index, s in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, index)
