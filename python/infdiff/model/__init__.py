"""The ∞-Diff network: sparse operator blocks, a grid U-Net, and their composition."""
from .network import InfDiffNet
from .sparse import SparseOperatorBlock, TimeEmbedding, resampled_kernel_size, timestep_embedding
from .unet import GridUNet

__all__ = ["GridUNet", "InfDiffNet", "SparseOperatorBlock", "TimeEmbedding", "resampled_kernel_size", "timestep_embedding"]
