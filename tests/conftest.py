# Triton reads TRITON_INTERPRET when it is imported, so it is set before any test module
# imports it: on machines without a GPU every Triton kernel then runs in the interpreter.
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
