import os
import signal
import subprocess
import sys

from .conftest import TINY

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddp_worker.py")


def test_two_process_torchrun_ranks_end_identical(tmp_path):
    result = tmp_path / "result.txt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0",
           WORKER, TINY, str(tmp_path / "run"), str(result)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # Own process group: on a timeout the ranks go too, not only torchrun (orphaned ranks
    # would wait forever on their rendezvous).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        raise AssertionError(f"torchrun did not finish within 240 s: {stderr[-3000:]}") from None
    assert proc.returncode == 0, stderr[-3000:]
    assert result.read_text() == "world=2 identical=True moved=True"
