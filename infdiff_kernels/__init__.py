"""infdiff_kernels: the operators of infinite-resolution diffusion.

Contract: docs/ops.md (geometry, each op's definition, backends, dtypes, errors).

Every op takes `backend=None` ("reference", "cpu", "triton", "cuda"; None picks the
fastest for the tensors' device) and accepts torch tensors or DLPack arrays (NumPy, CuPy),
returning the caller's array type (see `infdiff_kernels.interop`). Inputs are checked in
`_validate` and the backend is picked in `_dispatch`, nowhere else."""
from ._dispatch import BACKENDS, available_backends
from .interop import dlpack_op
from . import coords as _coords
from .knn import grid_to_points as _grid_to_points
from .knn import knn_to_grid as _knn_to_grid
from .sparse_conv import NeighborMap
from .sparse_conv import build_neighbor_map as _build_neighbor_map
from .sparse_conv import resample_kernel as _resample_kernel
from .sparse_conv import sparse_depthwise_conv as _sparse_depthwise_conv
from . import spectral as _spectral

sparse_depthwise_conv = dlpack_op(_sparse_depthwise_conv)
resample_kernel = dlpack_op(_resample_kernel)
build_neighbor_map = dlpack_op(_build_neighbor_map)
knn_to_grid = dlpack_op(_knn_to_grid)
grid_to_points = dlpack_op(_grid_to_points)
random_coords = _coords.random_coords
grid_coords = _coords.grid_coords
gather_points = dlpack_op(_coords.gather_points)
scatter_points = dlpack_op(_coords.scatter_points)
mollify = dlpack_op(_spectral.mollify)
wiener = dlpack_op(_spectral.wiener)
q_sample = dlpack_op(_spectral.q_sample)
gaussian_random_field = dlpack_op(_spectral.gaussian_random_field)
mollified_noise = dlpack_op(_spectral.mollified_noise)

__all__ = [
    "BACKENDS",
    "NeighborMap",
    "available_backends",
    "gather_points",
    "grid_coords",
    "grid_to_points",
    "knn_to_grid",
    "random_coords",
    "scatter_points",
    "build_neighbor_map",
    "gaussian_random_field",
    "mollified_noise",
    "mollify",
    "q_sample",
    "resample_kernel",
    "sparse_depthwise_conv",
    "wiener",
]
__version__ = "0.1.0"
