"""Sampling at any resolution, and PNG grids. The noise is drawn at the target resolution and
the sparse kernels are resampled by resolution / training resolution (InfDiffNet `scale`)."""
import math
import os

import numpy as np
import torch

from ._atomic import atomic_write
from .checkpoint import load_checkpoint
from .config import from_dict
from .diffusion import MollifiedDiffusion


# what may differ from training when sampling: the model was trained the same way whatever these are
SAMPLING_FIELDS = ("diffusion.wiener_nsr", "diffusion.noise", "diffusion.sampler", "diffusion.sample_steps")


def load_for_sampling(ckpt_path, device="cpu", overrides=None):
    """(config, EMA model in eval mode, diffusion) from a training checkpoint. overrides:
    {"diffusion.wiener_nsr": 0.01, ...}, only SAMPLING_FIELDS (e.g. to choose the Wiener
    ratio by evaluation, or to sample with the old per-pixel noise for a comparison)."""
    from .train import build_model

    state = load_checkpoint(ckpt_path, map_location=device)
    values = state["config"]
    for key, value in (overrides or {}).items():
        if key not in SAMPLING_FIELDS:
            raise ValueError(f"--set {key}: only sampling settings can be changed for a trained model "
                             f"({', '.join(SAMPLING_FIELDS)})")
        section, name = key.split(".")
        values = {**values, section: {**values.get(section, {}), name: value}}
    cfg = from_dict(values)
    model = build_model(cfg).to(device)
    model.load_state_dict(state["ema"])
    return cfg, model.eval(), MollifiedDiffusion(cfg)


@torch.no_grad()
def sample_images(model, diffusion, cfg, n, resolution, steps=None, sampler=None, generator=None, device="cpu", batch=16):
    """n samples (n, C, R, R) in [-1, 1] at `resolution`."""
    steps = steps or cfg.diffusion.sample_steps
    sampler = sampler or cfg.diffusion.sampler
    scale = resolution / cfg.data.resolution
    out = []
    for start in range(0, n, batch):
        shape = (min(batch, n - start), cfg.data.channels, resolution, resolution)
        x, _ = diffusion.sample(model, shape, steps=steps, sampler=sampler, generator=generator, device=device, scale=scale)
        out.append(x.cpu())
    return torch.cat(out)


def save_npz(arrays, path):
    """{resolution: samples (n, C, R, R)} as one .npz of float32 arrays `samples_<R>px`,
    written atomically (a reader never sees half a file)."""
    with atomic_write(path) as fh:
        np.savez(fh, **{f"samples_{r}px": x.float().cpu().numpy() for r, x in arrays.items()})
    return path


def save_grid(x, path, nrow=None):
    """Images (n, C, R, R) in [-1, 1] as one PNG grid with 1-pixel gaps."""
    from PIL import Image

    n, c, h, w = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    grid = np.zeros((rows * (h + 1) + 1, nrow * (w + 1) + 1, c), dtype=np.uint8)
    pix = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w] = pix[i]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(path)
    return path
