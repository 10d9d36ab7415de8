"""Suite-wide set-up that must happen before any test module is imported."""
import os

import torch

# Triton decides at import whether its @jit functions (its own standard library included) run in the
# interpreter; torch._dynamo imports Triton, so the switch must be set before the first test module
# that touches dynamo is collected. On a machine without CUDA the Triton kernels only run interpreted.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
