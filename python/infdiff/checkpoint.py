"""Checkpoints: written atomically (temp file in the same folder, then rename), read with an
error that says what is wrong instead of a pickle traceback."""
import os
import tempfile

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated or not one of ours."""


REQUIRED = ("format", "config", "model", "ema", "step")
FORMAT = "infdiff-ckpt-1"


def save_checkpoint(state, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format": FORMAT, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old or the new file, never half
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path, map_location="cpu"):
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises several types for truncated/garbage files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(k not in state for k in REQUIRED):
        raise CheckpointError(f"checkpoint {path} is not an infdiff checkpoint (expected format {FORMAT})")
    return state
