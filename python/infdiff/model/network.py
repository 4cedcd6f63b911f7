"""The ∞-Diff network (paper, section 4.2 and fig. 4): sparse operator blocks on the points,
k-NN lerp onto a fixed grid, a grid U-Net, bilinear interpolation back to the points, a skip
connection from the sparse branch, more sparse blocks, and an output projection."""
import torch
import torch.nn as nn

import infdiff_kernels as ik
from .autoencoder import SemanticEncoder
from .legacy import legacy_key_hook
from .sparse import PointsToGrid, TimeEmbedding, sparse_blocks
from .unet import GridUNet


def _is_full_grid(coords, size):
    """coords (B, N, 2) are every pixel of `size` in row-major order, as the samplers pass them.

    Under torch.compile this is always False: deciding it reads the coordinates (a host sync
    and a graph break), and the sparse path computes the same values, only slower."""
    h, w = size
    if coords.shape[1] != h * w or torch.compiler.is_compiling():
        return False
    return bool(torch.equal(coords, ik.grid_coords(size, coords.shape[0], device=coords.device, dtype=coords.dtype)))


class InfDiffNet(nn.Module):
    """f(x_t, t) on points: (B, N, C) features at coords (B, N, 2) of an (H, W) grid -> (B, N, C).

    `scale` is the sampling resolution over the training resolution; the sparse kernels are
    resampled by it so the operators act on the function, not on pixel units."""

    def __init__(self, model_cfg, in_channels):
        super().__init__()
        m = model_cfg
        self.time = TimeEmbedding(m.time_dim)
        self.to_grid = PointsToGrid(m, in_channels)
        self.unet = GridUNet(
            m.channels, m.channels, m.unet_channels, m.unet_mults, m.unet_res_blocks, m.attention_heads, m.dropout, m.time_dim,
            m.unet_patch,
        )
        self.merge = nn.Linear(2 * m.channels, m.channels)
        self.decoder = sparse_blocks(m)
        self.out_norm = nn.LayerNorm(m.channels)
        self.out = nn.Linear(m.channels, in_channels)
        # diffusion-autoencoder mode only, so that a plain model has exactly its old weights
        self.autoencoder = m.autoencoder.enabled
        if self.autoencoder:
            self.semantic = SemanticEncoder(m, in_channels)
            self.latent = nn.Linear(m.autoencoder.latent_dim, m.time_dim)
        # checkpoints from before the point stage was a module of its own
        self.register_load_state_dict_pre_hook(legacy_key_hook((("lift.", "to_grid.lift."), ("encoder.", "to_grid.blocks."))))

    def encode(self, x, coords, size, scale=1.0):
        """The semantic latent z (B, latent_dim) of clean images sampled at points x (B, N, C)."""
        if not self.autoencoder:
            raise ValueError("encode: this model has no encoder (model.autoencoder.enabled is false)")
        return self.semantic(x, coords, size, scale, _is_full_grid(coords, size))

    def forward(self, x, coords, size, t, scale=1.0, z=None, source=None):
        """z: the latent to condition on (autoencoder mode); source: (points, coords, size) of the
        clean images to encode into z in the same call (training, so DDP sees one forward)."""
        temb = self.time(t)
        if self.autoencoder:
            if source is not None:
                z = self.encode(*source)
            if z is None:
                raise ValueError("model.autoencoder.enabled: the decoder needs a latent z (or a source to encode)")
            # z joins the time embedding, so it reaches every modulated norm of the decoder
            temb = temb + self.latent(z.to(temb.dtype))
        elif z is not None or source is not None:
            raise ValueError("z: this model is not an autoencoder (model.autoencoder.enabled is false)")
        full = _is_full_grid(coords, size)
        nmap = self.to_grid.neighbor_map(coords, size, scale, full)  # the decoder's blocks reuse it
        skip, grid = self.to_grid(x, coords, size, temb, nmap, scale, full)
        grid = self.unet(grid, temb)
        up = ik.grid_to_points(grid.float(), coords, size)
        h = self.merge(torch.cat([up.to(skip.dtype), skip], -1))
        for block in self.decoder:
            h = block(h, coords, size, temb, nmap, scale, full)
        return self.out(self.out_norm(h))
