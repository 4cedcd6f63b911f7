"""The metrics of `infdiff eval`, each a function of two image sets (N, C, R, R) in [-1, 1]:

- `radial_power_spectrum` / `spectrum_error`: radially averaged power of the Fourier-series
  coefficients (FFT with norm="forward", so a function sampled at R and at 2R has the same
  spectrum on the shared band) and its relative error per band;
- `patch_swd`: sliced Wasserstein distance (POT) between random 8x8 patches, seeded;
- `frechet_kid`: Fréchet distance and KID (torchmetrics) on the features of a custom module;
- the resampling of images between resolutions (`to_resolution`);
- `same_function_difference`: how far a finer sample, restricted to a coarser grid, is from the
  coarser sample of the same seed (diffusion.noise_grid: one noise function at every resolution).

The GRF law and its mixture are in `grf.py`, the classifier scores in `features.py`."""
import numpy as np
import torch
import torch.nn.functional as F

from ..images import resize

PATCH = 8
# random patches per set and directions: the SW of two finite samples of one law is biased
# upwards ~ 1/sqrt(patches), so patches buy more than directions (two 1000-image MNIST test
# subsets: 0.030 at 4096 x 128, 0.016 at 16384 x 32, in the same ~1 s)
PATCHES = 16384
PROJECTIONS = 32


def _square(x, name="images"):
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} must be (N, C, R, R), got {tuple(x.shape)}")
    return x


def band_index(resolution):
    """(R, R) int64: the band of each FFT wavenumber (kx, ky), round(|k|), in cycles per unit length."""
    k = torch.fft.fftfreq(resolution, d=1.0 / resolution, dtype=torch.float64)
    return (k[:, None] ** 2 + k[None, :] ** 2).sqrt().round().long()


def radial_average(power):
    """(R//2 + 1,) float64: the mean of `power` (R, R), laid out as torch.fft.fft2 output, over
    the wavenumbers of each band 0 .. R//2 (bands beyond R//2 are only partly on the grid)."""
    resolution = power.shape[-1]
    bands = band_index(resolution)
    keep = bands <= resolution // 2
    sums = torch.bincount(bands[keep], weights=power[keep].double(), minlength=resolution // 2 + 1)
    counts = torch.bincount(bands[keep], minlength=resolution // 2 + 1)
    return sums / counts


def mode_power(x, chunk=256):
    """(R, R) float64: E|c_k|^2 per wavenumber, averaged over images and channels, c = fft2(x,
    norm="forward") laid out as torch.fft.fft2 output. x: (N, C, R, R)."""
    _square(x)
    power = torch.zeros(x.shape[-2:], dtype=torch.float64)
    for i in range(0, x.shape[0], chunk):  # chunks: complex128 of 1000 images at 112 px would be 200 MB
        power += torch.fft.fft2(x[i : i + chunk].double(), norm="forward").abs().square().sum(dim=(0, 1))
    return power / (x.shape[0] * x.shape[1])


def radial_power_spectrum(x, chunk=256):
    """(R//2 + 1,) float64: E|c_k|^2 averaged over images, channels and the wavenumbers of each
    band, c = fft2(x, norm="forward") (the Fourier-series coefficients of x as a function on
    [0, 1]^2). x: (N, C, R, R). Scaling x by a scales it by a^2."""
    return radial_average(mode_power(x, chunk))


def spectrum_error(samples_spectrum, reference_spectrum, top_band):
    """(per-band relative error |S - D| / D over bands 0 .. len-1 (NaN where D is 0), mean of it
    over bands 1 .. top_band): the constant band 0 (the mean) is left out of the scalar."""
    s = torch.as_tensor(samples_spectrum, dtype=torch.float64)
    d = torch.as_tensor(reference_spectrum, dtype=torch.float64)
    n = min(len(s), len(d))
    rel = (s[:n] - d[:n]).abs() / d[:n]
    rel[d[:n] == 0] = float("nan")
    return rel, float(rel[1 : top_band + 1].mean())


def random_patches(x, count=PATCHES, size=PATCH, generator=None):
    """(count, C*size*size) float64: patches of x (N, C, R, R) at uniformly random images and
    positions (with replacement). The same generator state on the same x gives the same patches."""
    _square(x)
    n, c, r, _ = x.shape
    size = min(size, r)
    img = torch.randint(n, (count,), generator=generator)
    row = torch.randint(r - size + 1, (count,), generator=generator)
    col = torch.randint(r - size + 1, (count,), generator=generator)
    offs = torch.arange(size)
    rows = (row[:, None] + offs)[:, :, None]  # (count, size, 1)
    cols = (col[:, None] + offs)[:, None, :]  # (count, 1, size)
    # advanced indices around the channel slice put the indexed dims first: (count, size, size, C)
    return x[img[:, None, None], :, rows, cols].reshape(count, -1).double()


def patch_swd(x, y, seed=0, count=PATCHES, size=PATCH, projections=PROJECTIONS):
    """Sliced 2-Wasserstein distance (pixel units of [-1, 1] images) between random size x size
    patches of x (N, C, R, R) and y (M, C, R, R): sqrt of the mean over `projections` random
    directions of W_2^2 of the projected patch laws (POT's ot.sliced_wasserstein_distance).
    Seeded: patches of each set from generator(seed), directions from seed, so identical
    sets give exactly 0."""
    import ot

    xs = random_patches(x, count, size, torch.Generator().manual_seed(seed)).numpy()
    ys = random_patches(y, count, size, torch.Generator().manual_seed(seed)).numpy()
    return float(ot.sliced_wasserstein_distance(xs, ys, n_projections=projections, seed=seed))


@torch.no_grad()
def frechet_kid(feature, real, fake, seed=0, subsets=100, subset_size=1000, batch=500):
    """(Fréchet distance, KID mean, KID std) between real (N, C, H, W) and fake (M, C, H, W),
    by torchmetrics' FrechetInceptionDistance / KernelInceptionDistance on the custom feature
    module `feature` (an nn.Module with `num_features`, taking images as given). KID: the mean
    and std over `subsets` random subsets of min(subset_size, N/2, M/2) from each set (half,
    so that subsets differ and the std means something), drawn from torch's global RNG,
    which is seeded here and restored after."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fid = FrechetInceptionDistance(feature=feature)
    size = max(2, min(subset_size, len(real) // 2, len(fake) // 2))
    kid = KernelInceptionDistance(feature=feature, subsets=subsets, subset_size=size)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, images.shape[0], batch):
            fid.update(images[i : i + batch], real=is_real)
            kid.update(images[i : i + batch], real=is_real)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return float(fid.compute()), float(kid_mean), float(kid_std)


def to_resolution(x, resolution, upsample="bicubic"):
    """x (N, C, R, R) resampled to (N, C, r, r), r = `resolution`.

    Down (r < R): the mean over cells of R/r x R/r pixels when R is a multiple of r (each
    pixel of the result is the mean of the function over its cell), else antialiased
    bilinear (`infdiff.images.resize`). Up (r > R): `upsample` = "bicubic" (torch's cubic
    convolution, a = -0.75, clamped to [-1, 1]; for images known only at R) or "fourier"
    (zero-padding the spectrum: exact band-limited interpolation of a periodic field)."""
    _square(x)
    r0 = x.shape[-1]
    if resolution == r0:
        return x
    if resolution < r0:
        return resize(x, (resolution, resolution))
    if upsample == "bicubic":
        return F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False).clamp_(-1, 1)
    if upsample == "fourier":
        lo = resolution // 2 - r0 // 2  # where frequency -r0//2 lands among -r//2 .. r//2 - 1
        out = []
        for i in range(0, x.shape[0], 256):  # chunks: complex128 at 112 px is 200 kB an image
            c = torch.fft.fftshift(torch.fft.fft2(x[i : i + 256].double(), norm="forward"), dim=(-2, -1))
            padded = F.pad(c, (lo, resolution - r0 - lo, lo, resolution - r0 - lo))
            # .real splits an even r0's unpaired Nyquist coefficient evenly between +-r0/2,
            # the standard real interpolation
            out.append(torch.fft.ifft2(torch.fft.ifftshift(padded, dim=(-2, -1)), norm="forward").real.to(x.dtype))
        return torch.cat(out)
    raise ValueError(f"upsample must be 'bicubic' or 'fourier', got {upsample!r}")


def summary(values):
    """A JSON-friendly list of floats (NaN -> None)."""
    arr = np.asarray(torch.as_tensor(values, dtype=torch.float64))
    return [None if not np.isfinite(v) else float(v) for v in arr]


def same_function_difference(fine, coarse, boundary):
    """(N,) float64: ||M fine M^T - coarse|| / ||coarse|| per image pair, fine (N, C, R, R) and
    coarse (N, C, r, r), r <= R, M = `restriction_matrix(R, r, boundary)`: fine's modes below r's
    Nyquist frequency seen at r's pixel centres. 0 when the two are one band-limited function."""
    from ..diffusion import restriction_matrix

    _square(fine, "fine")
    _square(coarse, "coarse")
    if fine.shape[:2] != coarse.shape[:2] or fine.shape[-1] < coarse.shape[-1]:
        raise ValueError(f"fine {tuple(fine.shape)} and coarse {tuple(coarse.shape)}: need the same images and "
                         "channels, fine at least as large as coarse")
    m = restriction_matrix(fine.shape[-1], coarse.shape[-1], boundary)
    diff = m @ fine.double() @ m.T - coarse.double()
    return diff.flatten(1).norm(dim=1) / coarse.double().flatten(1).norm(dim=1).clamp(min=1e-12)
