"""Images as the pipeline reads, resizes and writes them: (B, C, H, W) float tensors in [-1, 1].
One home for the resampling the guidance, the CLI and the evaluation share, and for PNG/npz I/O."""
import math
import os
import re

import numpy as np
import torch
import torch.nn.functional as F

from ._atomic import atomic_write


def resize(x, size):
    """Images x (B, C, H, W) to `size` (h, w): an area average when shrinking by whole factors
    (each output pixel is then the mean of the block it covers, the exact low-resolution view
    of a function), else antialiased bilinear."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    if h % size[0] == 0 and w % size[1] == 0:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def rms_after_downsampling(out, low):
    """The rms difference between images `out` (B, C, R, R) area-averaged to the resolution of
    `low` (B, C, r, r) and `low`: how far a super-resolution strays from its input."""
    return (resize(out, tuple(low.shape[-2:])) - low).pow(2).mean().sqrt().item()


def read_png(path, channels, resolution, what="--image"):
    """A PNG (or any image PIL reads) as one image (1, channels, R, R) in [-1, 1], resized
    bicubically to `resolution`. `what` names the argument in the error of an unreadable file."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB").resize((resolution, resolution), Image.BICUBIC)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{what} {path}: not a readable image ({type(err).__name__}: {err})") from None
    pixels = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1)
    return pixels[None, None] if pixels.dim() == 2 else pixels.permute(2, 0, 1)[None]


def save_npz(arrays, path, noise_grid=None):
    """{resolution: samples (n, C, R, R)} as one .npz of float32 arrays `samples_<R>px`,
    written atomically (a reader never sees half a file). noise_grid: the diffusion.noise_grid
    they were drawn with (F > 0: sample i is one function at every R), kept as `noise_grid` so
    a later scoring can pair them (`load_npz`); None writes no such field."""
    extra = {} if noise_grid is None else {"noise_grid": np.int64(noise_grid)}
    with atomic_write(path) as fh:
        np.savez(fh, **{f"samples_{r}px": x.float().cpu().numpy() for r, x in arrays.items()}, **extra)
    return path


def load_npz(path, what="samples file"):
    """({resolution: samples (n, C, R, R) float32}, noise_grid or None) from a `save_npz` file.
    Read without pickle, so a file cannot run code; anything else is a ValueError naming `what`."""
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path}: not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            fields = {k: npz[k] for k in npz.files}
    except Exception as err:  # a zip, npy or pickle error: not a save_npz file
        raise ValueError(f"{what} {path}: not a readable .npz ({type(err).__name__}: {err})") from None
    arrays, noise_grid = {}, None
    for key, value in fields.items():
        match = re.fullmatch(r"samples_(\d+)px", key)
        if match:
            res = int(match.group(1))
            if value.ndim != 4 or value.shape[-2:] != (res, res) or value.dtype.kind != "f":
                raise ValueError(f"{what} {path}: {key} must be float (n, C, {res}, {res}), got {value.dtype} "
                                 f"{value.shape}")
            arrays[res] = torch.from_numpy(value.astype(np.float32))
        elif key == "noise_grid" and value.shape == () and value.dtype.kind in "iu":
            noise_grid = int(value)
        else:
            raise ValueError(f"{what} {path}: unexpected field {key!r} (a file of `infdiff eval` or "
                             "`infdiff sample --format npz` holds samples_<R>px arrays and noise_grid)")
    if not arrays:
        raise ValueError(f"{what} {path}: no samples_<R>px arrays")
    return arrays, noise_grid


def save_grid(x, path, nrow=None):
    """Images x (n, C, R, R) in [-1, 1] as one PNG grid with 1-pixel gaps."""
    from PIL import Image

    n, c, h, w = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    grid = np.zeros((rows * (h + 1) + 1, nrow * (w + 1) + 1, c), dtype=np.uint8)
    pix = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w] = pix[i]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(path)
    return path


def save_resolution_rows(samples, path, n=8):
    """{resolution: samples (N, C, R, R)} as one PNG: a row per resolution (coarsest first) of
    the first n samples, each enlarged to the finest R by repeating pixels (nearest), so every
    row shows its grid's own pixels at one size. For samples drawn with one noise per seed
    (diffusion.noise_grid) column i is one function at every resolution."""
    if not samples:
        raise ValueError("samples: no resolution to show")
    top = max(samples)
    n = min([n] + [len(x) for x in samples.values()])
    rows = [F.interpolate(samples[r][:n].float(), size=(top, top), mode="nearest") for r in sorted(samples)]
    return save_grid(torch.cat(rows), path, nrow=n)
