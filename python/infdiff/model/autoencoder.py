"""The diffusion-autoencoder parts (∞-Diff, section 5 and appendix A; the latent model after
Preechakul et al. 2022): the semantic encoder, the first half of the network pooled to a
latent z, and the MLP-with-skips denoiser of the latent DDIM model with its process."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..diffusion import strided_times
from .legacy import legacy_key_hook
from .sparse import PointsToGrid, timestep_embedding
from .unet import ResBlock, UNetDownPath, _groups


class SemanticEncoder(nn.Module):
    """x0 on points (B, N, C) at coords of an (H, W) grid -> z (B, latent_dim).

    The network's first half with its own weights: the point stage (lift, sparse operator
    blocks, k-NN lerp onto the fixed grid), the U-Net's down path and one middle residual
    block, then a mean over the grid. The grid is the same whatever (H, W) is and the sparse
    kernels are resampled by `scale`, so an image and its upsample map to nearly the same z.
    The blocks are unconditioned: they get a learned constant in place of the time embedding
    (the image is clean), and no dropout."""

    def __init__(self, model_cfg, in_channels):
        super().__init__()
        m, a = model_cfg, model_cfg.autoencoder
        self.cond = nn.Parameter(torch.zeros(1, m.time_dim))
        self.to_grid = PointsToGrid(m, in_channels)
        self.unet_down = UNetDownPath(m.channels, m.unet_channels, m.unet_mults, m.unet_res_blocks, m.attention_heads,
                                      0.0, m.time_dim, m.unet_patch)
        ch = self.unet_down.out_channels
        self.mid = ResBlock(ch, ch, m.time_dim, 0.0)
        self.out = nn.Sequential(nn.GroupNorm(_groups(ch), ch), nn.SiLU())
        self.proj = nn.Linear(ch, a.latent_dim)
        # checkpoints from before the split: lift, blocks and inp at the top, and the down path
        # and the middle block as one flat list 'down' (the nested order, the middle block last)
        nested = [f"unet_down.down.{i}.{j}." for i, blocks in enumerate(self.unet_down.down) for j in range(len(blocks))]
        self.register_load_state_dict_pre_hook(legacy_key_hook(
            (("lift.", "to_grid.lift."), ("blocks.", "to_grid.blocks."), ("inp.", "unet_down.inp."),
             *((f"down.{k}.", new) for k, new in enumerate(nested + ["mid."])))))

    def forward(self, x, coords, size, scale=1.0, full_grid=False):
        temb = self.cond.expand(x.shape[0], -1)
        nmap = self.to_grid.neighbor_map(coords, size, scale, full_grid)
        _, grid = self.to_grid(x, coords, size, temb, nmap, scale, full_grid)
        g, _ = self.unet_down(grid, temb)
        g = self.mid(g, temb)
        return self.proj(self.out(g).mean(dim=(-2, -1)))


class LatentDenoiser(nn.Module):
    """eps(z_t, t) of the latent DDIM model: an MLP whose every layer sees z_t again (the skip
    of Preechakul et al.'s MLP-skip net), LayerNorm modulated by the time embedding, SiLU.
    It works on normalised latents; `z_mean` / `z_std` (buffers, saved with the weights) are
    the statistics of the training latents."""

    def __init__(self, latent_dim, hidden, layers, time_dim=64):
        super().__init__()
        self.time_dim = time_dim
        self.time = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(latent_dim, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden + latent_dim, hidden) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden, elementwise_affine=False) for _ in range(layers))
        self.mods = nn.ModuleList(nn.Linear(hidden, 2 * hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("z_mean", torch.zeros(latent_dim))
        self.register_buffer("z_std", torch.ones(latent_dim))

    def forward(self, z, t):
        temb = F.silu(self.time(timestep_embedding(t, self.time_dim)))
        h = self.inp(z)
        for layer, norm, mod in zip(self.layers, self.norms, self.mods):
            gain, shift = mod(temb).chunk(2, dim=-1)
            h = F.silu(norm(layer(torch.cat([h, z], -1))) * (1 + gain) + shift)
        return self.out(h)


def linear_alpha_bar(steps, beta_start=1e-4, beta_end=0.02):
    """abar_t of the linear beta schedule (DDPM's, the latent model's in Preechakul et al.),
    rescaled to `steps` so the end points match 1000 steps; float64."""
    scale = 1000 / steps
    betas = torch.linspace(scale * beta_start, min(scale * beta_end, 0.999), steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


class LatentDiffusion:
    """Plain Gaussian diffusion of normalised latents (no mollifier: z is a vector, not a
    function), eps prediction with an L1 loss, DDIM (eta = 0) sampling."""

    def __init__(self, steps):
        self.steps = steps
        self.alpha_bar = linear_alpha_bar(steps)

    def training_loss(self, model, z, generator=None):
        """z: normalised latents (B, D)."""
        t = torch.randint(0, self.steps, (z.shape[0],), generator=generator, device=z.device)
        noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        a = self.alpha_bar.to(z.device)[t].to(z.dtype)[:, None]
        return (model(a.sqrt() * z + (1 - a).sqrt() * noise, t) - noise).abs().mean()

    @torch.no_grad()
    def sample(self, model, n, steps, generator=None, device="cpu", dtype=torch.float32):
        """n latents (n, D) in the data's units (de-normalised), deterministic given the generator."""
        d = model.z_mean.numel()
        z = torch.randn((n, d), generator=generator, device=device, dtype=dtype)
        times = strided_times(self.steps, steps)
        abar = self.alpha_bar.to(device)
        for i, t in enumerate(times.tolist()):
            a_t = abar[t].to(dtype)
            a_prev = abar[times[i + 1]].to(dtype) if i + 1 < len(times) else torch.ones((), device=device, dtype=dtype)
            eps = model(z, torch.full((n,), t, device=device, dtype=torch.long))
            z0 = (z - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            z = a_prev.sqrt() * z0 + (1 - a_prev).sqrt() * eps
        return z * model.z_std + model.z_mean


def slerp(a, b, w):
    """Spherical interpolation between same-shaped tensors a and b (flattened per example) at
    weight w in [0, 1]: Gaussian noise keeps its norm, which a straight line would shrink."""
    fa, fb = a.flatten(1), b.flatten(1)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-12)
    theta = torch.arccos(cos.clamp(-1, 1))[:, None]
    sin = torch.sin(theta)
    near = sin.abs() < 1e-6  # parallel: the straight line is as good (and no 0 / 0)
    safe = torch.where(near, torch.ones_like(sin), sin)
    wa = torch.where(near, torch.full_like(theta, 1 - w), torch.sin((1 - w) * theta) / safe)
    wb = torch.where(near, torch.full_like(theta, w), torch.sin(w * theta) / safe)
    return (wa * fa + wb * fb).reshape(a.shape)
