"""The CUDA code paths, exercised without a GPU (the machine running the suite has none): each test
fails on the defect it names (mocks stand in for the CUDA runtime)."""
from __future__ import annotations

import warnings

import pytest
import torch

from tinlab.engine import runtime
from tinlab.engine.runtime import DistInfo, amp_dtype, resolve_device, set_rng_state
from tinlab.measure import timing


@pytest.fixture
def fake_gpus(monkeypatch):
    """A machine that says it has 2 GPUs, GPU 1 without bfloat16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)


def test_each_ddp_process_uses_its_local_rank_gpu(fake_gpus):
    """Before: device_ids=[device.index or 0] with an index-less device: every rank on GPU 0."""
    assert resolve_device("cuda", DistInfo(rank=3, world_size=4, local_rank=1)) == torch.device("cuda", 1)
    assert resolve_device("auto", DistInfo(rank=0, world_size=4, local_rank=0)) == torch.device("cuda", 0)


def test_one_amp_policy_bf16_where_supported_else_fp16_with_a_warning(fake_gpus, monkeypatch):
    gpu = torch.device("cuda", 0)
    assert amp_dtype(gpu) == torch.float16 and amp_dtype(gpu, enabled=False) is None
    with pytest.warns(RuntimeWarning, match="Fake GPU has no bfloat16 arithmetic: using float16"):
        assert amp_dtype(gpu, requested=torch.bfloat16) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert amp_dtype(gpu) == torch.bfloat16 and amp_dtype(gpu, requested=torch.bfloat16) == torch.bfloat16
    assert amp_dtype(torch.device("cpu")) is None  # CPU: no autocast (CI would silently test nothing)
    # the latency tool asks the same policy: bfloat16 requested on this GPU
    setting = timing.Setting(device="cuda:0", dtype="bfloat16")
    assert timing.amp_of(setting, gpu) == torch.bfloat16


def test_resume_with_fewer_visible_gpus_restores_what_exists(monkeypatch):
    """Before: set_rng_state_all with 2 saved states on a machine with 1 GPU raised."""
    state = {**runtime.rng_state(), "cuda": [torch.zeros(8, dtype=torch.uint8)] * 2}  # saved with 2 GPUs
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, index: restored.append(index))
    set_rng_state(state)
    assert restored == [0]


def test_cuda_events_go_on_the_timed_devices_stream(monkeypatch):
    """Before: Event.record() on the current device's stream, so --device cuda:1 timed GPU 0."""
    recorded, streams = [], {}

    class Event:
        def __init__(self, enable_timing=False):
            pass

        def record(self, stream=None):
            recorded.append(stream)

        def synchronize(self):
            pass

        def elapsed_time(self, other):
            return 1.0

    class Device:  # torch.cuda.device(...) as a no-op context
        def __init__(self, device):
            streams["entered"] = device

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "device", Device)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: f"stream of {device}")
    timing.interleaved_times({"f": lambda: None}, rounds=2, warmup=0, device="cuda:1")
    assert recorded == ["stream of cuda:1"] * 4 and streams["entered"] == torch.device("cuda", 1)


def test_cudnn_benchmark_is_restored_after_timing():
    """Before: latency set cudnn.benchmark globally and never restored it."""
    before = torch.backends.cudnn.benchmark
    with pytest.raises(RuntimeError):
        with timing.cudnn_benchmark(True):
            assert torch.backends.cudnn.benchmark
            raise RuntimeError("a failed measurement")
    assert torch.backends.cudnn.benchmark == before


def test_a_bf16_checkpoint_resumes_on_an_fp16_only_gpu(tmp_path, write_config):
    """A run trained under bf16 (or on the CPU) saves a disabled GradScaler's empty state; an fp16-only GPU
    enables its scaler, and GradScaler.load_state_dict({}) raises. The enabled scaler starts fresh instead."""
    from tinlab.engine.config import load_config
    from tinlab.engine.loop import Trainer

    trainer = Trainer(load_config(write_config("tsn")))
    state = trainer.state_dict()
    assert state["scaler"] == {}  # what a disabled scaler saves

    class Fp16Scaler:  # an enabled GradScaler as an fp16 GPU has it: refuses the empty state
        loaded = None

        def is_enabled(self):
            return True

        def load_state_dict(self, s):
            if not s:
                raise RuntimeError("The source state dict is empty, possibly because it was saved from a "
                                   "disabled instance of GradScaler.")
            Fp16Scaler.loaded = s

    trainer.scaler = Fp16Scaler()
    trainer.load_state_dict(state)  # before: the RuntimeError above
    assert Fp16Scaler.loaded is None
    trainer.load_state_dict({**state, "scaler": {"scale": 1024.0}})  # an fp16 run's own state is restored
    assert Fp16Scaler.loaded == {"scale": 1024.0}


def test_deterministic_is_honoured_on_a_gpu_and_autotuning_is_on_otherwise(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cudnn.deterministic)
    try:
        runtime.seed_everything(0, deterministic=True, cuda=True)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark and runtime.os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        runtime.seed_everything(0, deterministic=False, cuda=True)
        assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
        runtime.seed_everything(0, deterministic=False, cuda=False)
        assert not torch.backends.cudnn.benchmark  # nothing to autotune on the CPU
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=True)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]


def test_normalising_a_batch_makes_no_new_statistics_tensor(monkeypatch):
    """mean/std are built once per device: on a GPU each new tensor is a synchronous host-to-device copy."""
    from tinlab.data import transforms

    transforms._statistics.cache_clear()
    clips = torch.zeros(2, 3, 3, 4, 4, dtype=torch.uint8)
    transforms.normalize_clips(clips)
    built = []
    real = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: built.append(a) or real(*a, **k))
    for _ in range(3):
        transforms.normalize_clips(clips)
    assert built == [] and transforms._statistics.cache_info().hits >= 3
