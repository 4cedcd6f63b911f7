"""Datasets of images in [-1, 1], shape (C, R, R), with deterministic splits."""
import math

import infdiff_kernels as kernels
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import GRF_DATASETS
from . import sources

GRF_STD_UNITS = 4.0  # a GRF is divided by 4 pixel standard deviations, so |x| > 1 (clipped) has p < 1e-4


class TensorImages(Dataset):
    """Images held in memory as uint8 (N, C, R, R) (or (N, R, R)), served as float32 in [-1, 1]."""

    def __init__(self, images, resolution):
        if images.dim() == 3:
            images = images[:, None]
        self.images = images
        self.resolution = resolution

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, index):
        x = self.images[index].float().div_(127.5).sub_(1.0)
        if x.shape[-1] != self.resolution:
            x = F.interpolate(x[None], size=(self.resolution,) * 2, mode="bilinear", antialias=True, align_corners=False)[0]
        return x.clamp_(-1, 1)


def grf_pixel_std(resolution, alpha, tau):
    """Pixel std of `gaussian_random_field` at this resolution: sqrt(sum_k lambda_k)."""
    k = torch.fft.fftfreq(resolution, d=1.0 / resolution, dtype=torch.float64)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    lam = tau ** (2 * alpha - 2) * (4 * math.pi**2 * k2 + tau**2) ** (-alpha)
    return float(lam.sum().sqrt())


class GaussianRandomFields(Dataset):
    """Synthetic fields with a known law: each example is a periodic GRF N(0, C) with
    C = tau^(2a-2) (tau^2 - Laplacian)^(-a), from component 1 (alpha, tau) with probability
    `weight` else component 2 (alpha2, tau2), divided by GRF_STD_UNITS pixel stds of its
    component at `law_resolution` (default: `resolution`) and clipped to [-1, 1]. Example i of a
    split is a pure function of (seed, split, i, resolution).

    law_resolution: the resolution whose pixel std sets the scale, so draws at several
    resolutions sample one law of functions (multilevel training draws finer levels so)."""

    def __init__(self, resolution, size, seed, split, components, weight=1.0, law_resolution=None):
        self.resolution, self.size, self.weight = resolution, size, weight
        self.seed = seed * 1000003 + {"train": 0, "val": 1, "test": 2}[split] * 7919
        at = law_resolution or resolution
        self.components = [(a, t, 1.0 / (GRF_STD_UNITS * grf_pixel_std(at, a, t))) for a, t in components]

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        gen = torch.Generator().manual_seed(self.seed + index)
        pick = 0 if len(self.components) == 1 or torch.rand((), generator=gen) < self.weight else 1
        alpha, tau, scale = self.components[pick]
        u = kernels.gaussian_random_field((1, self.resolution, self.resolution), alpha, tau, generator=gen)
        return (u * scale).clamp_(-1, 1).float()


def _holdout(n, val_fraction, seed, split):
    """Deterministic train/val index split for datasets without an official one."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:].sort().values if split == "train" else perm[:n_val].sort().values


def build_dataset(data_cfg, resolution=None):
    """The Dataset a DataConfig describes. resolution (GRF data only): draw the same law at
    another resolution than data.resolution (scaled as there)."""
    d = data_cfg
    if d.name in GRF_DATASETS:
        comps = [(d.grf_alpha, d.grf_tau)]
        if d.name == "grf_mixture":
            comps.append((d.grf_mixture_alpha2, d.grf_mixture_tau2))
        size = d.limit or d.grf_size
        return GaussianRandomFields(resolution or d.resolution, size, d.split_seed, d.split, comps,
                                    d.grf_mixture_weight, law_resolution=d.resolution)
    if resolution not in (None, d.resolution):
        raise ValueError(f"build_dataset: data.name {d.name!r} is read at data.resolution only, got resolution {resolution}")
    if d.name in ("mnist", "fashion_mnist"):
        split = "train" if d.split == "train" else "test"  # official split: val and test both use t10k
        images = sources.mnist_images(split) if d.name == "mnist" else sources.fashion_mnist_images(split, d.path)
    else:
        if d.name == "cahn_hilliard":
            images = sources.cahn_hilliard_images(d.resolution, 0)
        else:
            images = sources.folder_images(d.path, d.resolution, d.channels)
        images = images[_holdout(images.shape[0], d.val_fraction, d.split_seed, d.split)]
    if d.limit:
        images = images[: d.limit]
    if images.dim() == 3 and d.channels == 3:
        images = images[:, None].expand(-1, 3, -1, -1)
    return TensorImages(images, d.resolution)

