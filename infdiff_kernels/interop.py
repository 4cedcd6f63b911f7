"""DLPack interop for downstream libraries: every public op takes NumPy arrays (CPU) or
CuPy arrays (CUDA) wherever it takes a tensor, without copying, and returns the caller's
array type.

The rule ("like" the first foreign array): when any array argument is not a torch.Tensor
but exports `__dlpack__`, every tensor the op returns is handed back as the type of the
first such argument (numpy.ndarray via `numpy.from_dlpack`, cupy.ndarray via
`cupy.from_dlpack`), sharing memory with the result. With torch inputs only, nothing
changes. Results crossing back carry no autograd history: use torch tensors to train."""
import functools
import importlib

import torch


# Arguments that are never arrays; asking a symbolic size (torch.compile) for __dlpack__
# would stop the trace.
_NOT_ARRAYS = (torch.Tensor, int, float, bool, str, tuple, list, torch.SymInt, torch.SymFloat, torch.SymBool)


def to_torch(value):
    """(tensor, foreign type or None): a zero-copy torch view of a DLPack array."""
    if value is None or isinstance(value, _NOT_ARRAYS) or not hasattr(value, "__dlpack__"):
        return value, None
    try:
        return torch.from_dlpack(value), type(value)
    except BufferError:
        # NumPy refuses to export read-only arrays; a copy is the only way to read them.
        return torch.from_dlpack(value.copy()), type(value)


def from_torch(tensor, like):
    """`tensor` as an array of type `like` (the type of a foreign input), zero-copy."""
    if like is None or not isinstance(tensor, torch.Tensor):
        return tensor
    module = importlib.import_module(like.__module__.split(".")[0])
    return module.from_dlpack(tensor.detach())


def _convert_outputs(result, like):
    if isinstance(result, tuple):
        return tuple(from_torch(r, like) for r in result)
    return from_torch(result, like)


def dlpack_op(fn):
    """Wraps a public op so that it follows the module's interop rule."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        like = None
        new_args = []
        for a in args:
            t, kind = to_torch(a)
            like = like or kind
            new_args.append(t)
        new_kwargs = {}
        for name, a in kwargs.items():
            t, kind = to_torch(a)
            like = like or kind
            new_kwargs[name] = t
        return _convert_outputs(fn(*new_args, **new_kwargs), like)

    return wrapper
