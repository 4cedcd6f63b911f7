"""The second stage of the diffusion-autoencoder mode: the latent DDIM model, trained on the
latents the (EMA) encoder gives the training images once the image model is trained
(docs/autoencoder.md)."""
import copy

import torch

from .model.autoencoder import LatentDenoiser, LatentDiffusion


def is_autoencoder(cfg):
    return cfg.model.family == "mollified" and cfg.model.autoencoder.enabled


def build_latent(cfg):
    a = cfg.model.autoencoder
    return LatentDenoiser(a.latent_dim, a.latent_hidden, a.latent_layers)


def latent_diffusion(cfg):
    return LatentDiffusion(cfg.model.autoencoder.latent_diffusion_steps)


def load_latent(cfg, weights, where="checkpoint", key="latent"):
    """The latent model of `cfg` with `weights` (a state dict of tensors, the checkpoint's
    `key`), or ValueError."""
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise ValueError(f"{where}: {key!r} must map parameter names to tensors")
    latent = build_latent(cfg)
    try:
        latent.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"{where}: the latent model does not fit model.autoencoder: {err}") from None
    return latent.eval()


@torch.no_grad()
def encode_images(model, images, train_resolution, batch=64):
    """z (B, latent_dim) of images (B, C, R, R) at any R: the encoder sees every pixel, its
    kernels resampled by R / train_resolution."""
    import infdiff_kernels as ik

    out = []
    for start in range(0, images.shape[0], batch):
        x = images[start : start + batch]
        b, _, h, w = x.shape
        coords = ik.grid_coords((h, w), b, device=x.device)
        out.append(model.encode(ik.gather_points(x, coords), coords, (h, w), scale=h / train_resolution))
    return torch.cat(out)


def train_latent(cfg, model, dataset, device, generator, log=None):
    """(latent, latent_ema): a LatentDenoiser fitted to the latents of `dataset` (its first
    model.autoencoder.latent_examples images, 0 = all) under `model`'s encoder, and the EMA of
    its weights by model.autoencoder.latent_ema_decay, which is what samples."""
    from .train import ema_update  # train imports this module

    a = cfg.model.autoencoder
    count = len(dataset) if a.latent_examples == 0 else min(a.latent_examples, len(dataset))
    model.eval()
    zs = []
    for start in range(0, count, 256):
        x = torch.stack([dataset[i] for i in range(start, min(count, start + 256))]).to(device)
        zs.append(encode_images(model, x, cfg.data.resolution).float())
    z = torch.cat(zs)
    latent = build_latent(cfg).to(device)
    latent.z_mean.copy_(z.mean(0))
    latent.z_std.copy_(z.std(0).clamp_min(1e-4) if len(z) > 1 else torch.ones_like(z[0]))
    zn = (z - latent.z_mean) / latent.z_std
    latent_ema = copy.deepcopy(latent).requires_grad_(False)
    process = latent_diffusion(cfg)
    opt = torch.optim.AdamW(latent.parameters(), lr=a.latent_lr)
    latent.train()
    for step in range(a.latent_steps):
        idx = torch.randint(0, len(zn), (min(a.latent_batch, len(zn)),), generator=generator, device=device)
        loss = process.training_loss(latent, zn[idx], generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(latent_ema, latent, a.latent_ema_decay)
        if log is not None and ((step + 1) % 200 == 0 or step + 1 == a.latent_steps):
            log(step + 1, loss.item())
    return latent.eval(), latent_ema.eval()
