"""k-NN lerp between sparse points and dense grids (SPEC section 2)."""
from .ops import grid_to_points, knn_to_grid

__all__ = ["grid_to_points", "knn_to_grid"]
