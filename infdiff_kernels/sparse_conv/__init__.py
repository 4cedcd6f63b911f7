"""Sparse depthwise convolution with neighbourhood-count normalisation (docs/ops.md#sparse_depthwise_conv)."""
from .neighbor_map import NeighborMap, build_neighbor_map
from .ops import sparse_depthwise_conv
from .resample import resample_kernel

__all__ = ["NeighborMap", "build_neighbor_map", "resample_kernel", "sparse_depthwise_conv"]
