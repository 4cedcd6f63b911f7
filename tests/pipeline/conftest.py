import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRESETS = os.path.join(ROOT, "python", "infdiff", "configs")
TINY = os.path.join(PRESETS, "tiny.yaml")


@pytest.fixture(autouse=True)
def _one_thread():
    # the pipeline tests are many tiny ops: one thread avoids OpenMP spin on a shared CPU
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_cfg(tmp_path):
    from infdiff.config import load_config

    return load_config(TINY, {"train.out_dir": str(tmp_path / "run")})
