"""The known law of the GRF datasets (`grf`, `grf_mixture`) for the evaluation.

A dataset example is u / (4 s(R_train)): u ~ N(0, C), C = tau^(2a-2) (tau^2 - Laplacian)^(-a)
periodic on [0, 1]^2, drawn by `gaussian_random_field` at the training resolution R_train
with the wavenumbers of that grid (|kx|, |ky| <= R_train/2), s(R_train) its pixel std
(`grf_pixel_std`), clipped to [-1, 1] (4 stds: the clip changes the law by < 1e-4). So its
Fourier-series coefficients c_k (fft2 with norm="forward") are independent complex Gaussians
with E|c_k|^2 = scale^2 lambda_k, lambda_k = tau^(2a-2) (4 pi^2 |k|^2 + tau^2)^(-a),
scale = 1 / (4 s(R_train)). The same function on a finer grid R has these coefficients and
more (the law's finer draw `law_draws`); `law_spectrum` is their radial average at any R.

A mixture picks component 1 with probability `grf_mixture_weight`, else component 2, each
scaled by its own pixel std. `assign_components` gives each image the component of larger
likelihood of its coefficients in the band every resolution resolves, |kx|, |ky| < R_train/2,
restricted to the modes where both components carry power well above a white-noise floor
(`FLOOR_STD`), with that floor added to each component's variance.

`resolved_top_band` is the band the spectrum bar reads (docs/evaluation.md#the-resolved-band):
the bands below the training grid's Nyquist band in which the law carries enough power to stand
above the noise of the forward process's least noisy state, where sampling ends."""
import infdiff_kernels as kernels
import torch

from ..data.datasets import GRF_STD_UNITS, grf_pixel_std
from ..diffusion import cosine_alpha_bar
from .metrics import radial_average

# The assignment's noise floor: white noise of this pixel std (images in [-1, 1], whose pixel
# std is 1/4) put on every sample. A smooth component (alpha = 4) has ~1e-10 of the noise's
# power at its highest modes, so without a floor the residual of any sampler there (or 1e-3 of
# added white noise) made every field look like the rougher component: 100 % "component 1".
# Per mode, such noise adds FLOOR_STD^2 / R^2 to E|c_k|^2 (fft2, norm="forward"); R = R_train
# is the largest of that over the resolutions >= R_train the band is read at.
FLOOR_STD = 0.01
# modes kept: those where every component's variance is at least this many times the floor
FLOOR_MARGIN = 10.0
# The resolved band's margin. Sampling ends with the estimate E[c_k | x_0] from the least noisy
# state x_0 = sqrt(abar_0) c + sqrt(1 - abar_0) xi; for a Gaussian mode of power P under noise of
# power N that estimate keeps SNR / (1 + SNR) of P (SNR = abar_0 P / ((1 - abar_0) N)), whatever
# the model. 19 keeps >= 95 %: finer bands are below the process's own resolution, not the model's.
RESOLVED_SNR = 19.0


def components(data_cfg):
    """[(alpha, tau, scale, weight)] of the dataset's law: one entry for `grf`, two for a mixture."""
    d = data_cfg
    comps = [(d.grf_alpha, d.grf_tau)]
    weights = [1.0]
    if d.name == "grf_mixture":
        comps.append((d.grf_mixture_alpha2, d.grf_mixture_tau2))
        weights = [d.grf_mixture_weight, 1.0 - d.grf_mixture_weight]
    return [(a, t, 1.0 / (GRF_STD_UNITS * grf_pixel_std(d.resolution, a, t)), w) for (a, t), w in zip(comps, weights)]


def eigenvalues(resolution, alpha, tau):
    """(R, R) float64 lambda_k at the FFT wavenumbers of an R grid (torch.fft.fft2 layout)."""
    k = torch.fft.fftfreq(resolution, d=1.0 / resolution, dtype=torch.float64)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    return tau ** (2 * alpha - 2) * (4 * torch.pi**2 * k2 + tau**2) ** (-alpha)


def law_spectrum(data_cfg, resolution, component=None, weights=None):
    """(R//2 + 1,) float64: the expected radial power spectrum (as `radial_power_spectrum`) of
    the dataset's law drawn at `resolution`: of one component (index), or of the mixture
    (None; the weighted mean of the components' spectra, with the configured weights or with
    `weights`, e.g. the shares of a set of images assigned to each component)."""
    comps = components(data_cfg)
    if weights is not None:
        comps = [c[:3] + (float(w),) for c, w in zip(comps, weights)]
    picked = comps if component is None else [comps[component][:3] + (1.0,)]
    power = sum(w * s**2 * eigenvalues(resolution, a, t) for a, t, s, w in picked)
    return radial_average(power)


def perfect_sampler_spectrum(cfg, resolution):
    """(R//2 + 1,) float64: the expected radial power spectrum of a perfect mollified model's
    decoded samples at `resolution` (configured mixture weights): per component and mode, the
    law's power P times SNR / (1 + SNR), what the posterior mean of T x0 given the least noisy
    state keeps (SNR = abar_0 P / ((1 - abar_0) N), N the forward noise's power per mode), times
    the Wiener decoder's power gain (G^2 / (G^2 + nsr))^2, G = exp(-2 pi^2 sigma^2 |k|^2) the
    mollifier's response (periodic boundary; sigma = 0: no decoder). So the share of the law's
    power that the process's end and the decoder (`diffusion.wiener_nsr`) take from the best
    model's samples, which no training recovers."""
    from ..diffusion import MollifiedDiffusion

    process = MollifiedDiffusion(cfg)
    abar0 = float(process.alpha_bar[0])
    noise = (1 - abar0) * process.noise_std((resolution, resolution)) ** 2 / resolution**2
    k = torch.fft.fftfreq(resolution, d=1.0 / resolution, dtype=torch.float64)
    g2 = process.mollifier_response(k[:, None] ** 2 + k[None, :] ** 2).square()
    gain = (g2 / (g2 + process.nsr)) ** 2 if process.sigma > 0 else torch.ones_like(g2)
    power = 0
    for alpha, tau, scale, weight in components(cfg.data):
        p = scale**2 * eigenvalues(resolution, alpha, tau)
        snr = abar0 * p / noise
        power = power + weight * p * snr / (1 + snr) * gain
    return radial_average(power)


def law_draws(data_cfg, n, resolution, seed=0):
    """(images (n, 1, R, R) float32, component of each (n,) int64): draws of the dataset's law
    directly at `resolution` (component picked with the mixture weight, scaled by the
    training-resolution std, clipped like the dataset). At the training resolution this is
    the dataset's own recipe; at R > R_train it is the same law on a finer grid."""
    gen = torch.Generator().manual_seed(seed)
    comps = components(data_cfg)
    pick = (torch.rand(n, generator=gen) >= comps[0][3]).long() if len(comps) > 1 else torch.zeros(n, dtype=torch.long)
    out = torch.empty(n, 1, resolution, resolution)
    for j, (alpha, tau, scale, _) in enumerate(comps):
        idx = (pick == j).nonzero().flatten()
        if len(idx):
            u = kernels.gaussian_random_field((len(idx), 1, resolution, resolution), alpha, tau, generator=gen)
            out[idx] = (u * scale).clamp_(-1, 1).float()
    return out, pick


def assignment_band(data_cfg, resolution):
    """((R, R) bool mask of the modes `log_likelihoods` reads, in fft2 layout; the floor variance
    added to each component's). The modes: |kx|, |ky| < R_train/2 (resolved at every R >= R_train,
    so finer content does not sway the assignment) and every component's variance
    scale^2 lambda_k >= FLOOR_MARGIN * the floor (so noise or a sampler's residual there does not)."""
    k = torch.fft.fftfreq(resolution, d=1.0 / resolution, dtype=torch.float64)
    half = data_cfg.resolution / 2
    keep = (k[:, None].abs() < half) & (k[None, :].abs() < half)
    floor = (FLOOR_STD / data_cfg.resolution) ** 2
    for alpha, tau, scale, _ in components(data_cfg):
        keep &= scale**2 * eigenvalues(resolution, alpha, tau) >= FLOOR_MARGIN * floor
    if not keep.any():
        raise ValueError(f"data.grf_alpha / data.grf_tau / data.grf_mixture_alpha2 / data.grf_mixture_tau2: no "
                         f"Fourier mode where every component's power is {FLOOR_MARGIN:g}x the noise floor of "
                         f"pixel std {FLOOR_STD}; the mixture's components cannot be told apart")
    return keep, floor


def log_likelihoods(x, data_cfg, chunk=256):
    """(N, K) float64: log density (up to one constant shared by the components) of the
    Fourier coefficients of x (N, C, R, R) in `assignment_band` under each component plus the
    white-noise floor: -1/2 sum_k (|c_k|^2 / v_k + log v_k), v_k = scale^2 lambda_k + floor.
    The sum runs over both members of each conjugate pair (k, -k), which doubles a real
    field's log density and so keeps the arg max."""
    keep, floor = assignment_band(data_cfg, x.shape[-1])
    out = []
    for i in range(0, x.shape[0], chunk):
        power = torch.fft.fft2(x[i : i + chunk].double(), norm="forward").abs().square().sum(1)[:, keep]  # (n, modes)
        cols = []
        for alpha, tau, scale, _ in components(data_cfg):
            v = scale**2 * eigenvalues(x.shape[-1], alpha, tau)[keep] + floor
            cols.append(-0.5 * (power / v + v.log() * x.shape[1]).sum(1))
        out.append(torch.stack(cols, 1))
    return torch.cat(out)


def assign_components(x, data_cfg):
    """(N,) int64: the more likely component of each image x (N, C, R, R)."""
    return log_likelihoods(x, data_cfg).argmax(1)


def resolved_top_band(cfg):
    """K: the spectrum bar reads bands 1..K, the largest K below the training grid's Nyquist band
    (K < R_train / 2) such that every band 1..K of the law (mixture: configured weights) has per
    mode at least RESOLVED_SNR times the power of the least noisy forward state's noise,
    N = (1 - abar_0) / R_train^2 per mode (white noise of unit pixel std at R_train, fft2 norm
    "forward"; the mollifier scales signal and noise alike, so it drops out). The band is the
    same at every sampling resolution: it is where the training data and the process put
    information. 0 when even band 1 is below it."""
    r0 = cfg.data.resolution
    abar0 = float(cosine_alpha_bar(cfg.diffusion.steps)[0])
    noise = (1 - abar0) / r0**2
    snr = abar0 * law_spectrum(cfg.data, r0) / noise
    top = 0
    while top + 1 < r0 // 2 and snr[top + 1] >= RESOLVED_SNR:
        top += 1
    return top
