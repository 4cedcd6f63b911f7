"""Spectral filters: Gaussian mollifier, Wiener filter, trace-class noise and the fused
forward process (docs/ops.md#spectral-filters)."""
from .ops import gaussian_random_field, mollified_noise, mollify, q_sample, wiener

__all__ = ["gaussian_random_field", "mollified_noise", "mollify", "q_sample", "wiener"]
