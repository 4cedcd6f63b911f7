"""The infdiff_kernels ops the model files (model/sparse.py, model/network.py) still reach
through this module. Every other module imports infdiff_kernels directly; this file goes
when those two import it directly too (they are being reworked on another branch)."""
import infdiff_kernels as _k

sparse_depthwise_conv = _k.sparse_depthwise_conv
build_neighbor_map = _k.build_neighbor_map
resample_kernel = _k.resample_kernel
knn_to_grid = _k.knn_to_grid
grid_to_points = _k.grid_to_points
grid_coords = _k.grid_coords
