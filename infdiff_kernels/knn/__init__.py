"""k-NN lerp between sparse points and dense grids (docs/ops.md#knn_to_grid, #grid_to_points)."""
from .ops import grid_to_points, knn_to_grid

__all__ = ["grid_to_points", "knn_to_grid"]
