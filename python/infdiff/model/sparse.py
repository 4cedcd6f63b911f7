"""The point-level layers: time embedding, the sparse operator block (∞-Diff, appendix A:
depthwise sparse convolution with count normalisation, a three-layer MLP, and a LayerNorm
modulated by the time embedding, with a residual connection) and the point stage that ends
in the k-NN lerp onto the grid."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import infdiff_kernels as ik


def timestep_embedding(t, dim, max_period=10000.0):
    """Sinusoidal embedding (B, dim) of integer times t (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class TimeEmbedding(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t):
        return self.mlp(timestep_embedding(t, self.dim))


def resampled_kernel_size(kernel_size, scale):
    """K' of resample_kernel (docs/ops.md#resample_kernel) for a K-tap kernel at `scale` times the resolution."""
    r = kernel_size // 2
    r_new = math.floor(r * scale + 0.5)
    return 1 if r == 0 or r_new == 0 else 2 * r_new + 1


def dense_depthwise_conv(h, size, weight, bias, normalize, padding="zeros"):
    """sparse_depthwise_conv when the points are all H * W pixels in row-major order: h (B, H*W, C),
    weight (C, K, K), bias (C,) -> (B, H*W, C). The window count is the number of taps inside
    the image, so the result equals the sparse op's (tests/pipeline/test_model_diffusion.py).
    padding="circular": the grid is periodic, every window is whole (no count to normalise by);
    mkldnn's channels-last depthwise convolution ran it 3-4x faster than the gather kernel at
    the 13-29 tap kernels of 2x-4x sampling (one side-by-side microbenchmark, 16 x 32 x 112^2,
    1 thread, on a machine busy with other jobs: a rough figure, not a bench/ result)."""
    b, n, c = h.shape
    rows, cols = size
    k = weight.shape[-1]
    grid = h.transpose(1, 2).reshape(b, c, rows, cols)
    circular = padding == "circular"
    if circular:
        grid = F.pad(grid, (k // 2,) * 4, mode="circular")
    grid = grid.contiguous(memory_format=torch.channels_last)
    out = F.conv2d(grid, weight.unsqueeze(1).to(h.dtype), padding=0 if circular else k // 2, groups=c)
    if normalize != "none":
        counts = k * k if circular else F.conv2d(h.new_ones(1, 1, rows, cols), h.new_ones(1, 1, k, k), padding=k // 2)
        out = out * ((k * k if normalize == "partial" else 1.0) / counts)
    out = out.reshape(b, c, n).transpose(1, 2)
    return out + bias.to(h.dtype) if bias is not None else out


class SparseOperatorBlock(nn.Module):
    """h + MLP(modLN(sparse_depthwise_conv(h))) on points (B, N, C).

    The kernel is a linear integral operator on the function the points sample; at another
    resolution the same operator is applied with the kernel resampled (resample_kernel)."""

    def __init__(self, channels, kernel_size, normalize, mlp_ratio, time_dim, padding="zeros"):
        super().__init__()
        self.normalize, self.padding = normalize, padding
        self.weight = nn.Parameter(torch.randn(channels, kernel_size, kernel_size) / kernel_size)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.norm = nn.LayerNorm(channels, elementwise_affine=False)
        self.modulation = nn.Linear(time_dim, 2 * channels)
        hidden = channels * mlp_ratio
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, channels)
        )
        nn.init.zeros_(self.mlp[-1].weight)  # each block starts as the identity
        nn.init.zeros_(self.mlp[-1].bias)

    def kernel(self, scale):
        if scale == 1.0:
            return self.weight
        return ik.resample_kernel(self.weight, scale, self.normalize)

    def forward(self, h, coords, size, temb, neighbor_map, scale=1.0, full_grid=False):
        """h (B, N, C) at coords (B, N, 2). full_grid: the points are every pixel of `size` in
        row-major order (sampling), where the sparse convolution is a dense one."""
        if full_grid:
            y = dense_depthwise_conv(h, size, self.kernel(scale), self.bias, self.normalize, self.padding)
        elif self.padding == "circular":
            raise ValueError("model.conv_padding circular: the network runs on full grids only (every pixel of "
                             f"{tuple(size)} in row-major order), got {h.shape[1]} points")
        else:
            y = ik.sparse_depthwise_conv(
                h, coords, size, self.kernel(scale), self.bias, self.normalize, check=False, neighbor_map=neighbor_map
            )
        shift, gain = self.modulation(F.silu(temb)).chunk(2, dim=-1)
        y = self.norm(y) * (1 + gain[:, None]) + shift[:, None]
        return h + self.mlp(y)


def sparse_blocks(model_cfg):
    """The model.sparse_blocks sparse operator blocks of a model config, time-modulated."""
    m = model_cfg
    return nn.ModuleList(SparseOperatorBlock(m.channels, m.kernel_size, m.normalize, m.mlp_ratio, m.time_dim,
                                             m.conv_padding) for _ in range(m.sparse_blocks))


class PointsToGrid(nn.Module):
    """The network's point stage: a lift of (B, N, C_in) points to model.channels, the sparse
    operator blocks, then the k-NN lerp onto the fixed (grid_size, grid_size) grid. The
    denoiser and the semantic encoder each have one (their own weights)."""

    def __init__(self, model_cfg, in_channels):
        super().__init__()
        m = model_cfg
        self.kernel_size, self.grid_size, self.knn = m.kernel_size, m.grid_size, m.knn
        self.lift = nn.Linear(in_channels, m.channels)
        self.blocks = sparse_blocks(m)

    def neighbor_map(self, coords, size, scale, full_grid):
        """The neighbour map of the (resampled) kernel, built once per forward and shared by
        every sparse layer and their backward; None on a full grid (dense convolutions)."""
        if full_grid:
            return None
        return ik.build_neighbor_map(coords, size, resampled_kernel_size(self.kernel_size, scale), check=False)

    def forward(self, x, coords, size, temb, neighbor_map, scale=1.0, full_grid=False):
        """(point features (B, N, channels), grid (B, channels, G, G) in float32)."""
        h = self.lift(x)
        for block in self.blocks:
            h = block(h, coords, size, temb, neighbor_map, scale, full_grid)
        return h, ik.knn_to_grid(h.float(), coords, size, (self.grid_size, self.grid_size), k=self.knn)
