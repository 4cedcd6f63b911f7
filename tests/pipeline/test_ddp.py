import os
import subprocess
import sys

from .conftest import TINY

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddp_worker.py")


def test_two_process_torchrun_ranks_end_identical(tmp_path):
    result = tmp_path / "result.txt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0",
           WORKER, TINY, str(tmp_path / "run"), str(result)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert result.read_text() == "world=2 identical=True moved=True"
