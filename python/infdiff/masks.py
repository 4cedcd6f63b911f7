"""Inpainting masks: 1 marks an observed pixel, 0 a pixel to fill. A mask is a named shape
(MASK_SHAPES) or a PNG whose white pixels mark the region to fill."""
import os

import torch

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
    """The observed-pixel mask (1, 1, H, W) of a named shape; the name says the region to fill.
    generator: a CPU torch.Generator for random-strokes (masks are drawn on the CPU so a seed
    gives the same mask on every device)."""
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
    """A mask (1, 1, H, W) from a named shape or a PNG path."""
    if spec in MASK_SHAPES:
        return named_mask(spec, size, generator)
    if not os.path.isfile(spec):
        raise ValueError(f"mask: {spec!r} is neither a PNG file nor a shape ({', '.join(MASK_SHAPES)})")
    return mask_from_png(spec, size)
