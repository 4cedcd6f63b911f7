"""Microstructure statistics of two-phase images (the `cahn_hilliard` dataset) for `infdiff eval`.

An image x in [-1, 1] is thresholded at 0 into its phase, phi = 1 where x > 0, else 0 (the
data are grey-level renderings of a two-phase field; 0 is the midpoint of their range).
From phi:

- the two-point correlation S2(d) = P(phi(p) = 1 and phi(p + d) = 1), estimated over all
  pixels p with periodic wrap-around (the Cahn-Hilliard fields are simulated on a periodic
  domain: neighbour differences across the image edge are as small as inside), by an FFT
  autocorrelation, then radially averaged over the lags of each radius band round(|d|) in
  pixels 0 .. R/2; S2(0) is the volume fraction and S2(d) -> VF^2 at long range;
- the volume fraction of each image (the share of its pixels in phase 1), whose histograms
  of samples and data are compared with the 1-D Wasserstein distance (scipy).

porespy offers the same S2 but is not a dependency; the periodic FFT is a few lines."""
import numpy as np
import torch

from .metrics import _square, radial_average

THRESHOLD = 0.0
DATASETS = ("cahn_hilliard",)
VF_BINS = 20  # histogram bins in the report's plot, over the range the fractions span


def phase(x, threshold=THRESHOLD):
    """(N, R, R) float64: 1 where x (N, C, R, R) > threshold (channels averaged first), else 0."""
    _square(x, "x")
    return (x.double().mean(1) > threshold).double()


def two_point_map(x, threshold=THRESHOLD, chunk=256):
    """(R, R) float64: S2 at every periodic lag (dy, dx), laid out like torch.fft.fft2 output
    (lag 0 at [0, 0], lag -1 at [-1]), averaged over the images of x (N, C, R, R)."""
    _square(x, "x")
    r = x.shape[-1]
    total = torch.zeros(r, r, dtype=torch.float64)
    for i in range(0, x.shape[0], chunk):
        f = torch.fft.fft2(phase(x[i : i + chunk], threshold))
        # Wiener-Khinchin: the circular autocorrelation sum_p phi(p) phi(p + d) is ifft(|F|^2)
        total += torch.fft.ifft2(f.abs().square()).real.sum(0)
    return total / (x.shape[0] * r * r)


def two_point_correlation(x, threshold=THRESHOLD):
    """(R//2 + 1,) float64: S2 radially averaged over the lags of each band round(|d|) = 0 .. R/2 pixels."""
    return radial_average(two_point_map(x, threshold))


def volume_fractions(x, threshold=THRESHOLD):
    """(N,) float64: the phase-1 share of each image of x (N, C, R, R)."""
    return phase(x, threshold).mean((1, 2))


def compare(x, y, threshold=THRESHOLD):
    """Samples x (N, C, R, R) vs reference y (M, C, R, R) at one resolution R. Returns (figures,
    curves): figures = s2_err (mean |S2_x - S2_y| over radii 1 .. R/2 - 1, the radii below
    the band the square grid cuts), s2_rel_err (the same of |S2_x - S2_y| / S2_y), vf_w1 (1-D
    Wasserstein distance between the per-image volume fractions), vf_mean (of x); curves =
    S2 of both, the per-radius absolute and relative errors, and both sets of volume fractions."""
    _square(x, "x")
    _square(y, "y")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"y must have the resolution of x ({x.shape[-1]}), got {tuple(y.shape)}")
    from scipy.stats import wasserstein_distance

    sx, sy = two_point_correlation(x, threshold), two_point_correlation(y, threshold)
    abs_err = (sx - sy).abs()
    rel_err = abs_err / sy
    rel_err[sy == 0] = float("nan")
    top = x.shape[-1] // 2 - 1
    vx, vy = volume_fractions(x, threshold), volume_fractions(y, threshold)
    figures = {"s2_err": float(abs_err[1 : top + 1].mean()), "s2_rel_err": float(rel_err[1 : top + 1].nanmean()),
               "vf_w1": float(wasserstein_distance(vx.numpy(), vy.numpy())), "vf_mean": float(vx.mean())}
    curves = {"s2_samples": sx, "s2_data": sy, "s2_abs_err": abs_err, "s2_rel_err": rel_err,
              "vf_samples": vx, "vf_data": vy}
    return figures, curves


def histogram_edges(*fraction_sets, bins=VF_BINS):
    """(bins + 1,) numpy edges spanning every set of volume fractions: the Cahn-Hilliard
    fractions sit within a few % of 1/2, so bins over all of [0, 1] would lump them together."""
    values = np.concatenate([np.asarray(f, dtype=np.float64) for f in fraction_sets])
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.01, 0.05 * (hi - lo))
    return np.linspace(max(0.0, lo - pad), min(1.0, hi + pad), bins + 1)
