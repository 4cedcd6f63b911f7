"""The ∞-Diff network: sparse operator blocks, a grid U-Net, and their composition;
`build_model(cfg)` is the one place a Config becomes a network."""
from .network import InfDiffNet
from .sparse import SparseOperatorBlock, TimeEmbedding, resampled_kernel_size, timestep_embedding
from .unet import GridUNet


def build_model(cfg):
    """The InfDiffNet of a Config (its model section and the data's channel count), on the CPU
    in float32; the trainer and the sampler move it to their device."""
    return InfDiffNet(cfg.model, cfg.data.channels)


__all__ = ["GridUNet", "InfDiffNet", "SparseOperatorBlock", "TimeEmbedding", "build_model", "resampled_kernel_size",
           "timestep_embedding"]
