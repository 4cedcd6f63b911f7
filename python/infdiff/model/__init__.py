"""The networks: the ∞-Diff network (sparse operator blocks, a grid U-Net, and their
composition) and the Fourier neural operator of the function-space family; `build_model(cfg)`
is the one place a Config becomes a network."""
from .fno import FourierNeuralOperator
from .network import InfDiffNet
from .sparse import SparseOperatorBlock, TimeEmbedding, resampled_kernel_size, timestep_embedding
from .unet import GridUNet


def build_model(cfg):
    """The network of a Config's model.family -- InfDiffNet (mollified) or FourierNeuralOperator
    (fno) -- for the data's channel count, on the CPU in float32; the trainer and the sampler
    move it to their device."""
    if cfg.model.family == "fno":
        o = cfg.model.fno
        return FourierNeuralOperator(cfg.data.channels, width=o.width, modes=o.modes, depth=o.depth,
                                     grid=o.grid or None, time_dim=o.time_dim)
    return InfDiffNet(cfg.model, cfg.data.channels)


__all__ = ["FourierNeuralOperator", "GridUNet", "InfDiffNet", "SparseOperatorBlock", "TimeEmbedding", "build_model", "resampled_kernel_size",
           "timestep_embedding"]
