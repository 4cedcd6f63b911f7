"""Checkpoints: written atomically (temp file in the same folder, fsync, rename, fsync of the
folder), read without ever running code, with an error that says what is wrong instead of a
pickle traceback.

Reading uses `torch.load(..., weights_only=True)`: its unpickler builds only tensors, plain
containers (dict, OrderedDict, list, tuple), numbers, strings, bools and None, and refuses
a pickle that names any other global (a function such as os.system, or a class) before
anything is built. An infdiff checkpoint needs nothing more: the config is a plain dict, the
weights OrderedDicts of tensors, the optimizer state dicts of tensors and numbers, the RNG
states uint8 tensors. So a checkpoint made by someone else can be sampled from safely.

A file that needs other globals (written by older code or another tool, e.g. with NumPy
scalars in it) is refused with a CheckpointError naming them. If you trust the file, convert
it once; the copy loads safely:

    python -m infdiff.checkpoint convert --trust FILE [-o OUT]
"""
import argparse
import os
import pickle
import sys
import warnings
from collections import OrderedDict

import torch

from ._atomic import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, unsafe to read or not one of ours."""


REQUIRED = ("format", "config", "model", "ema", "step")
FORMAT = "infdiff-ckpt-1"
CONVERT_HINT = "python -m infdiff.checkpoint convert --trust {path}"
_TMP_PREFIX = ".ckpt-"


def _tmp_name(path, pid):
    return f"{_TMP_PREFIX}{os.path.basename(path)}.{pid}."


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(path):
    """Temp files of `path` left by a writer that died (SIGKILL, power loss) mid-save."""
    folder = os.path.dirname(os.path.abspath(path))
    prefix = f"{_TMP_PREFIX}{os.path.basename(path)}."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def save_checkpoint(state, path):
    """Write {"format": FORMAT, **state} to `path` atomically: readers (and a resume after a
    crash at any instant) see the previous file or the new one, never a partial one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _remove_stale_temps(path)
    with atomic_write(path, prefix=_tmp_name(path, os.getpid())) as fh:
        torch.save({"format": FORMAT, **state}, fh)


def _unsafe_globals(path):
    """The globals a torch.save zip file's pickle names beyond the safe set, or None when
    they cannot be listed (e.g. a legacy or plain pickle file)."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        return None


def _refusal(path, err):
    found = _unsafe_globals(path)
    if found:
        what = f"its pickle names {', '.join(found)}, which the safe loader does not build"
    else:
        detail = [line.strip() for line in str(err).splitlines() if "Unsupported" in line or "GLOBAL" in line]
        what = "its pickle uses constructs the safe loader does not run" + (f" ({detail[0]})" if detail else "")
    return CheckpointError(
        f"checkpoint {path} was refused: {what}. Unpickling it could run arbitrary code, so infdiff "
        "reads checkpoints with torch.load(weights_only=True) (tensors, numbers, strings and containers "
        "only). If you made this file or trust its source, convert it once with "
        f"`{CONVERT_HINT.format(path=path)}` and use the converted copy"
    )


def _check_structure(state, path):
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(k not in state for k in REQUIRED):
        raise CheckpointError(f"checkpoint {path} is not an infdiff checkpoint (expected format {FORMAT})")
    if not isinstance(state["config"], dict):
        raise CheckpointError(f"checkpoint {path}: 'config' must be a mapping, got {type(state['config']).__name__}")
    for key in ("model", "ema"):
        weights = state[key]
        if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
        ):
            raise CheckpointError(f"checkpoint {path}: {key!r} must map parameter names to tensors")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint {path}: 'step' must be an int >= 0, got {step!r}")
    return state


def load_checkpoint(path, map_location="cpu"):
    """The state dict of an infdiff checkpoint, read without running any code from the file.
    Raises CheckpointError when the file is missing, corrupt, unsafe or not ours."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error says it
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" in str(err).lower():
            raise _refusal(path, err) from None
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file (UnpicklingError: {err})") from None
    except Exception as err:  # torch raises several types for truncated/garbage files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file ({type(err).__name__}: {err})") from None
    return _check_structure(state, path)


# ------------------------------------------------------------ converting trusted files


def _plain(value, where):
    """`value` rebuilt from the types the safe loader reads (NumPy arrays and scalars become
    tensors and Python numbers); anything else is an error naming where it is."""
    if value is None:
        return value
    for kind in (bool, int, float, str, bytes):  # NumPy's float64 is a float subclass: made plain
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone() if value.requires_grad else value
    if isinstance(value, torch.Size):
        return tuple(int(v) for v in value)
    if isinstance(value, (torch.dtype, torch.device)):
        return value
    if isinstance(value, OrderedDict):
        return OrderedDict((_plain(k, where), _plain(v, f"{where}[{k!r}]")) for k, v in value.items())
    if isinstance(value, dict):
        return {_plain(k, where): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, np.generic):
            return value.item()
    except ImportError:
        pass
    raise CheckpointError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a safe checkpoint cannot hold"
    )


def convert(src, dst, trust=False):
    """Rewrite a trusted checkpoint that needs unsafe globals as one that loads safely.
    Reading `src` runs its pickle: only do it for files you made or trust (trust=True)."""
    if not trust:
        raise CheckpointError("convert reads the file with full pickle, which can run code: pass trust=True "
                              "(--trust) only for a file you made or trust")
    if not os.path.isfile(src):
        raise CheckpointError(f"checkpoint not found: {src}")
    try:
        state = torch.load(src, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"checkpoint {src} is corrupt or not a torch file ({type(err).__name__}: {err})") from None
    state = _check_structure(_plain(state, "state"), src)
    save_checkpoint({k: v for k, v in state.items() if k != "format"}, dst)
    return load_checkpoint(dst)  # proves the copy reads safely


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m infdiff.checkpoint",
                                description="Tools for infdiff checkpoints.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="rewrite a trusted checkpoint so that it loads with weights_only=True")
    c.add_argument("file")
    c.add_argument("-o", "--output", default=None, help="default: FILE with .safe.pt in place of .pt")
    c.add_argument("--trust", action="store_true",
                   help="required: reading FILE runs its pickle, so only convert files you made or trust")
    args = p.parse_args(argv)
    if not args.trust:
        print(f"{p.prog} convert: refusing to read {args.file} without --trust: converting unpickles it, "
              "which can run any code it contains. Pass --trust only for a file you made or trust.", file=sys.stderr)
        return 2
    out = args.output or (args.file[:-3] if args.file.endswith(".pt") else args.file) + ".safe.pt"
    try:
        state = convert(args.file, out, trust=True)
    except CheckpointError as err:
        print(f"{p.prog} convert: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} (step {state['step']}); it loads with weights_only=True")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
