"""infdiff_kernels: the operators of infinite-resolution diffusion (contract: SPEC.md).

Every op takes `backend=None` ("reference", "cpu", "triton", "cuda"; None picks the
fastest for the tensors' device) and accepts torch tensors or DLPack arrays (NumPy, CuPy),
returning the caller's array type (see `infdiff_kernels.interop`)."""
from ._dispatch import BACKENDS, available_backends
from .interop import dlpack_op
from .sparse_conv import NeighborMap
from .sparse_conv import build_neighbor_map as _build_neighbor_map
from .sparse_conv import resample_kernel as _resample_kernel
from .sparse_conv import sparse_depthwise_conv as _sparse_depthwise_conv

sparse_depthwise_conv = dlpack_op(_sparse_depthwise_conv)
resample_kernel = dlpack_op(_resample_kernel)
build_neighbor_map = dlpack_op(_build_neighbor_map)

__all__ = [
    "BACKENDS",
    "NeighborMap",
    "available_backends",
    "build_neighbor_map",
    "resample_kernel",
    "sparse_depthwise_conv",
]
__version__ = "0.1.0"
