"""The infdiff_kernels ops the pipeline uses, from one place (the public API only)."""
import infdiff_kernels as _k

sparse_depthwise_conv = _k.sparse_depthwise_conv
build_neighbor_map = _k.build_neighbor_map
resample_kernel = _k.resample_kernel
knn_to_grid = _k.knn_to_grid
grid_to_points = _k.grid_to_points
mollify = _k.mollify
wiener = _k.wiener
gaussian_random_field = _k.gaussian_random_field
q_sample = _k.q_sample
mollified_noise = _k.mollified_noise
random_coords = _k.random_coords
grid_coords = _k.grid_coords
gather_points = _k.gather_points
