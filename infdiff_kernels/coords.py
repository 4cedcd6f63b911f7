"""Coordinate helpers of the pipeline: which pixels are the sparse points, and moving
features between dense images (B, C, H, W) and point features (B, N, C).

Point coordinates follow docs/ops.md#geometry: integer (row, col) pairs, (B, N, 2), N distinct
pixels per batch element."""
import torch

from . import _validate


def random_coords(batch, size, fraction=None, count=None, *, generator=None, device="cpu", dtype=torch.int64):
    """(batch, N, 2) uniformly random distinct pixels of an (H, W) grid per batch element, in
    ascending pixel order (the training sampler of infinite-resolution diffusion). Give either
    `fraction` in (0, 1] (N = round(fraction * H * W), at least 1) or `count` N in [1, H * W].
    Contract: docs/ops.md#coordinate-helpers"""
    _validate.batch_count(batch)
    h, w = _validate.size2("size", size)
    _validate.coord_dtype(dtype)
    count = _validate.point_count(fraction, count, (h, w))
    device = torch.device(device)
    gen_device = generator.device if generator is not None else device
    # The k smallest of i.i.d. uniform keys are a uniform k-subset.
    keys = torch.rand((batch, h * w), generator=generator, device=gen_device).to(device)
    linear = keys.topk(count, dim=1, largest=False).indices.sort(1).values
    return torch.stack((linear // w, linear % w), -1).to(dtype)


def grid_coords(size, batch=None, *, device="cpu", dtype=torch.int64):
    """All H * W pixels of an (H, W) grid in row-major order: (H * W, 2), or (batch, H * W, 2).
    Contract: docs/ops.md#coordinate-helpers"""
    h, w = _validate.size2("size", size)
    _validate.coord_dtype(dtype)
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    out = torch.stack((rows.reshape(-1), cols.reshape(-1)), -1).to(dtype)
    return out if batch is None else out.expand(batch, -1, -1).contiguous()


def _image_points(image, coords):
    """The linear pixel index (B, 1, N) of each point of an image (B, C, H, W)."""
    h, w = _validate.image_points(image, coords)
    coords32 = _validate.checked_coords_op(coords, h, w, False)
    return (coords32[..., 0].long() * w + coords32[..., 1].long()).unsqueeze(1)


def gather_points(image, coords):
    """Point features (B, N, C) of a dense image (B, C, H, W) at coords (B, N, 2).
    Contract: docs/ops.md#coordinate-helpers"""
    linear = _image_points(image, coords)
    b, c, h, w = image.shape
    flat = image.reshape(b, c, h * w)  # explicit: B or C may be 0
    return flat.gather(2, linear.expand(b, c, linear.shape[2])).transpose(1, 2).contiguous()


def scatter_points(x, coords, size, fill=0.0, *, check=True):
    """(image (B, C, H, W), mask (B, 1, H, W) bool): point features x (B, N, C) written at
    coords on a grid filled with `fill`, and where they were written. Duplicate points (which
    would leave one of their values at random) raise ValueError unless check=False.
    Contract: docs/ops.md#coordinate-helpers"""
    size = _validate.points(x, coords, size)
    coords = _validate.checked_coords_op(coords, *size, check)
    b, n, c = x.shape
    image = x.new_full((b, c, size[0] * size[1]), fill)
    linear = (coords[..., 0].long() * size[1] + coords[..., 1].long()).unsqueeze(1)
    image = image.scatter(2, linear.expand(b, c, n), x.transpose(1, 2))
    mask = torch.zeros((b, 1, size[0] * size[1]), dtype=torch.bool, device=x.device)
    mask.scatter_(2, linear, True)
    return image.view(b, c, *size), mask.view(b, 1, *size)
