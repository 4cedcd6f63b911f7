"""Inpainting and super-resolution with reconstruction guidance (∞-Diff, section 5, after
Ho et al. 2022b): at every reverse step

    x_{t-1} <- x_{t-1} - lambda * grad_{x_t} || m * (D(mu0(x_t, t)) - T y) ||^2

where mu0 is the model's estimate of T x0, y the observed image, T the mollifier, m the mask
of observed pixels and D the resize from the sampling resolution to y's resolution (identity
for inpainting, an area average for super-resolution). The paper's super-resolution encodes
the low-resolution image with a diffusion autoencoder (`Sampler.superres_encode`, autoencoder
checkpoints only, docs/autoencoder.md); this module's method (`superres --method sdedit`)
needs no encoder: the upsampled input is noised to an intermediate time t_s and denoised at
the high resolution (sparse kernels resampled), with the guidance above keeping the result's
downsampled version on the input. Inpainting can start from a noised observation too (t_s < 1
keeps more of it)."""
import torch
import torch.nn.functional as F

from .images import resize


def guided_sample(model, diffusion, observed, mask, resolution, steps=100, guidance_scale=1.0, start=1.0,
                  generator=None, train_resolution=None, replace=False):
    """Samples (B, C, R, R) at `resolution` consistent with `observed` (B, C, r, r) on `mask`
    (broadcastable to observed; 1 = observed pixel).

    start: t_s / steps in (0, 1]. Below 1 the reverse process starts from the observation,
    upsampled to R and noised to t_s (fresh noise at 1). guidance_scale: lambda, in units
    of the per-pixel weight, so 1 moves the masked estimate about its error per step.
    replace (observed at the sampling resolution only): as in Ho et al.'s video model, the
    observed pixels of x_{t-1} are replaced by the observation noised to t-1, and the
    guidance moves only the unobserved pixels."""
    if not 0 < start <= 1:
        raise ValueError(f"start must be in (0, 1], got {start}")
    if replace and observed.shape[-1] != resolution:
        raise ValueError("replace needs the observation at the sampling resolution")
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
    b, c, r_obs, _ = observed.shape
    device = observed.device
    mask = mask.to(device=device, dtype=observed.dtype).expand_as(observed)
    target = diffusion.mollify(observed)  # T y: the guidance compares in mollified space
    shape = (b, c, resolution, resolution)
    start_t = round(start * (diffusion.steps - 1))
    x_init = None
    if start < 1:
        up = F.interpolate(observed, size=(resolution, resolution), mode="bicubic", align_corners=False).clamp(-1, 1)
        noise = diffusion.white_noise(shape, generator, device, observed.dtype)
        x_init = diffusion.q_sample(up, torch.full((b,), start_t, dtype=torch.long, device=device), noise)
    abar = diffusion.alpha_bar

    def guidance(xt, x0_est, t):
        # the sampler uses the clipped estimate; unclipped, at high noise it is ~1/sqrt(abar)
        # times too large and its error gradient drives the unobserved pixels to saturation
        err = mask * (resize(x0_est.clamp(-1, 1), (r_obs, r_obs)) - target)
        (grad,) = torch.autograd.grad(err.pow(2).sum(), xt)
        # d x0_est / d x_t ~ 1/sqrt(abar_t) and a 1/k area average spreads the gradient over
        # k^2 pixels: rescale so lambda=1 is one error-sized step whatever t and R are
        area = (resolution / r_obs) ** 2
        step = guidance_scale * 0.5 * float(abar[t].sqrt()) * area * grad.detach()
        return step * (1 - mask) if replace else step

    def replace_observed(x, t_prev):
        if t_prev < 0:
            return mask * target + (1 - mask) * x
        tt = torch.full((b,), t_prev, dtype=torch.long, device=device)
        noised = diffusion.q_sample(observed, tt, diffusion.white_noise(shape, generator, device, observed.dtype))
        return mask * noised + (1 - mask) * x

    scale = resolution / (train_resolution or resolution)
    x, _ = diffusion.sample(model, shape, steps=steps, sampler="ddim", generator=generator, device=device,
                            dtype=observed.dtype, scale=scale, x_init=x_init, start_t=start_t,
                            guidance=guidance if guidance_scale > 0 else None,
                            post_step=replace_observed if replace else None)
    return x


def check_images(where, name, x):
    """ValueError unless x is a (B, C, H, W) float tensor of finite values (checked before any work)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = f"shape {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{where}: {name} must be a (B, C, H, W) float tensor, got {got}")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = [int(i) for i in bad.nonzero()[0]]
        raise ValueError(f"{where}: {name} holds {int(bad.sum())} NaN/Inf values (first at {first}: "
                         f"{x[tuple(first)].item()}); refusing to sample from a non-finite input")


def check_mask(mask, images):
    """ValueError unless mask is a tensor of values in [0, 1] broadcastable to images (B, C, H, W)."""
    if not isinstance(mask, torch.Tensor) or not bool(torch.isfinite(mask).all()) or bool(((mask < 0) | (mask > 1)).any()):
        raise ValueError("inpaint: mask must be a tensor of values in [0, 1] (1 = observed pixel)")
    try:
        torch.broadcast_shapes(mask.shape, images.shape)
    except RuntimeError:
        raise ValueError(f"inpaint: mask of shape {tuple(mask.shape)} does not broadcast to images "
                         f"{tuple(images.shape)}") from None


def inpaint(model, diffusion, cfg, images, mask, steps=100, guidance_scale=1.0, start=1.0, generator=None, replace=True):
    """Inpainted images at the images' resolution (observed pixels are kept as observed)."""
    check_images("inpaint", "images", images)
    check_mask(mask, images)
    r = images.shape[-1]
    x = guided_sample(model, diffusion, images, mask, r, steps, guidance_scale, start, generator, cfg.data.resolution,
                      replace)
    mask = mask.to(x.dtype).expand_as(x)
    return mask * images + (1 - mask) * x


def superres(model, diffusion, cfg, low, resolution, steps=100, guidance_scale=1.0, start=0.5, generator=None):
    """High-resolution (B, C, R, R) images whose area-downsampled view matches `low`."""
    check_images("superres", "low", low)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"superres: resolution must be an int >= 1, got {resolution!r}")
    if resolution <= low.shape[-1]:
        # nothing to add at or below the input's resolution: the guidance would only blur it
        raise ValueError(f"superres: resolution (--resolution) {resolution} must be above the input's "
                         f"{low.shape[-1]} px (--input-resolution); super-resolution only goes up")
    ones = torch.ones_like(low[:, :1])
    return guided_sample(model, diffusion, low, ones, resolution, steps, guidance_scale, start, generator, cfg.data.resolution)
