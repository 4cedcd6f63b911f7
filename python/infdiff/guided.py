"""Inpainting and super-resolution with reconstruction guidance (∞-Diff, section 5, after
Ho et al. 2022b): at every reverse step

    x_{t-1} <- x_{t-1} - lambda * grad_{x_t} || m * (D(mu0(x_t, t)) - T y) ||^2

where mu0 is the model's estimate of T x0, y the observed image, T the mollifier, m the mask
of observed pixels and D the resize from the sampling resolution to y's resolution (identity
for inpainting, an area average for super-resolution). The paper's super-resolution encodes
the low-resolution image with a diffusion autoencoder; we have no encoder, so instead the
upsampled input is noised to an intermediate time t_s and denoised at the high resolution
(sparse kernels resampled), with the guidance above keeping the result's downsampled version
on the input. Inpainting can start from a noised observation too (t_s < 1 keeps more of it)."""
import torch
import torch.nn.functional as F

from . import _compat

MASK_SHAPES = ("center", "left-half", "right-half", "top-half", "bottom-half", "random-strokes")


def _strokes(size, generator, count=4, width=None):
    """A 0/1 (H, W) map of `count` thick random line segments (the region to fill)."""
    h, w = size
    width = width or max(1, round(min(h, w) / 10))
    rows = torch.arange(h, dtype=torch.float32)[:, None]
    cols = torch.arange(w, dtype=torch.float32)[None, :]
    hole = torch.zeros(h, w)
    for _ in range(count):
        (r0, c0, r1, c1) = (torch.rand(4, generator=generator) * torch.tensor([h, w, h, w])).tolist()
        dr, dc = r1 - r0, c1 - c0
        length2 = max(dr * dr + dc * dc, 1e-6)
        # distance from each pixel to the segment (projection clamped to its ends)
        s = (((rows - r0) * dr + (cols - c0) * dc) / length2).clamp(0, 1)
        dist2 = (rows - r0 - s * dr) ** 2 + (cols - c0 - s * dc) ** 2
        hole = torch.maximum(hole, (dist2 <= width**2).float())
    return hole


def named_mask(name, size, generator=None):
    """The observed-pixel mask (1, 1, H, W) of a named shape; the name says the region to fill."""
    h, w = size
    hole = torch.zeros(h, w)
    if name == "center":
        hole[h // 4 : h - h // 4, w // 4 : w - w // 4] = 1
    elif name == "left-half":
        hole[:, : w // 2] = 1
    elif name == "right-half":
        hole[:, w // 2 :] = 1
    elif name == "top-half":
        hole[: h // 2] = 1
    elif name == "bottom-half":
        hole[h // 2 :] = 1
    elif name == "random-strokes":
        hole = _strokes(size, generator if generator is not None else torch.Generator().manual_seed(0))
    else:
        raise ValueError(f"mask: unknown shape {name!r} (known: {', '.join(MASK_SHAPES)}, or a PNG path)")
    return (1 - hole)[None, None]


def mask_from_png(path, size):
    """Observed-pixel mask (1, 1, H, W) from a PNG: white (> 127) marks the region to fill."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("L").resize((size[1], size[0]), Image.NEAREST)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"--mask {path}: not a readable image ({type(err).__name__}: {err})") from None
    return torch.from_numpy((np.asarray(img) <= 127).astype("float32"))[None, None]


def load_mask(spec, size, generator=None):
    """A mask from a named shape or a PNG path."""
    if spec in MASK_SHAPES:
        return named_mask(spec, size, generator)
    import os

    if not os.path.isfile(spec):
        raise ValueError(f"mask: {spec!r} is neither a PNG file nor a shape ({', '.join(MASK_SHAPES)})")
    return mask_from_png(spec, size)


def resize(x, size):
    """Images (B, C, H, W) to `size`: area average when shrinking by whole factors, else
    antialiased bilinear (the D of the guidance; also the low-resolution view of an output)."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    if h % size[0] == 0 and w % size[1] == 0:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


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
        noise = diffusion.white_noise(shape, generator, device)
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
        noised = diffusion.q_sample(observed, tt, diffusion.white_noise(shape, generator, device))
        return mask * noised + (1 - mask) * x

    scale = resolution / (train_resolution or resolution)
    x, _ = diffusion.sample(model, shape, steps=steps, sampler="ddim", generator=generator, device=device,
                            scale=scale, x_init=x_init, start_t=start_t,
                            guidance=guidance if guidance_scale > 0 else None,
                            post_step=replace_observed if replace else None)
    return x


def _finite_images(where, name, x):
    """ValueError unless x is a (B, C, H, W) float tensor of finite values (checked before any work)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = f"shape {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{where}: {name} must be a (B, C, H, W) float tensor, got {got}")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = [int(i) for i in bad.nonzero()[0]]
        raise ValueError(f"{where}: {name} holds {int(bad.sum())} NaN/Inf values (first at {first}: "
                         f"{x[tuple(first)].item()}); refusing to sample from a non-finite input")


def inpaint(model, diffusion, cfg, images, mask, steps=100, guidance_scale=1.0, start=1.0, generator=None, replace=True):
    """Inpainted images at the images' resolution (observed pixels are kept as observed)."""
    _finite_images("inpaint", "images", images)
    if not isinstance(mask, torch.Tensor) or not bool(torch.isfinite(mask).all()) or bool(((mask < 0) | (mask > 1)).any()):
        raise ValueError("inpaint: mask must be a tensor of values in [0, 1] (1 = observed pixel)")
    try:
        torch.broadcast_shapes(mask.shape, images.shape)
    except RuntimeError:
        raise ValueError(f"inpaint: mask of shape {tuple(mask.shape)} does not broadcast to images "
                         f"{tuple(images.shape)}") from None
    r = images.shape[-1]
    x = guided_sample(model, diffusion, images, mask, r, steps, guidance_scale, start, generator, cfg.data.resolution,
                      replace)
    mask = mask.to(x.dtype).expand_as(x)
    return mask * images + (1 - mask) * x


def superres(model, diffusion, cfg, low, resolution, steps=100, guidance_scale=1.0, start=0.5, generator=None):
    """High-resolution (B, C, R, R) images whose area-downsampled view matches `low`."""
    _finite_images("superres", "low", low)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"superres: resolution must be an int >= 1, got {resolution!r}")
    ones = torch.ones_like(low[:, :1])
    return guided_sample(model, diffusion, low, ones, resolution, steps, guidance_scale, start, generator, cfg.data.resolution)
