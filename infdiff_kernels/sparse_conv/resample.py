"""resample_kernel: a sparse-conv kernel for another resolution (docs/ops.md#resample_kernel)."""
import math

import torch.nn.functional as F

from .. import _validate


def resample_kernel(weight, scale, normalize="partial"):
    """The (C, K', K') kernel that acts at `scale` times the resolution as `weight` (C, K, K)
    does at the original one: K' = 2 r' + 1 with r' = floor(r * scale + 0.5), taps bilinear
    in the original kernel, times the quadrature factor (r / r')^2 unless normalize="mean".

    When r = 0 or r' = 0 the result is the centre tap alone, unscaled: a 1x1 kernel has no
    window whose integral the factor could keep.
    Contract: docs/ops.md#resample_kernel"""
    k, scale = _validate.resample_inputs(weight, scale, normalize)
    r = k // 2
    r_new = math.floor(r * scale + 0.5)
    if r == 0 or r_new == 0:
        return weight[:, r : r + 1, r : r + 1].clone()
    size = 2 * r_new + 1
    out = F.interpolate(weight.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=True)[:, 0]
    if normalize != "mean":
        out = out * (r / r_new) ** 2
    return out
