"""Mollified diffusion (∞-Diff, section 3.2): cosine schedule, forward process
x_t = T(sqrt(abar_t) x0 + sqrt(1 - abar_t) xi), the loss ||f(x_t, t) - T xi||^2 on a random
coordinate subset (or that residual Wiener-filtered on the grid: diffusion.loss_wiener_nsr),
DDPM ancestral and DDIM samplers, and Wiener-filter decoding.

States live on dense grids (B, C, H, W) at whatever resolution is being sampled; the model
sees them only at points (B, N, C), so training can use a subset of the pixels."""
import math

import infdiff_kernels as kernels
import torch


def cosine_alpha_bar(steps, s=0.008, max_beta=0.999):
    """abar_t for t = 1..steps (index t-1) of the cosine schedule of Nichol & Dhariwal, with
    betas clipped at max_beta, in float64."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1 - betas, 0)


def strided_times(steps, count, start=None):
    """`count` evenly spaced integer times of a `steps`-step process, from `start` (default
    steps - 1) down to 0, rounded and without repeats."""
    start = steps - 1 if start is None else int(start)
    return torch.linspace(start, 0, max(1, min(count, start + 1))).round().long().unique_consecutive()


def dct_matrix(n, device="cpu"):
    """(n, n) float64 orthonormal DCT-II: row j is sqrt(2 / n) c_j cos(pi j (2 i + 1) / (2 n)),
    c_0 = 1 / sqrt(2), else 1 (scipy.fft.dct(norm="ortho") as a matrix; its inverse is its transpose)."""
    j = torch.arange(n, device=device, dtype=torch.float64)
    m = torch.cos(math.pi * j[:, None] * (2 * j[None, :] + 1) / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def restriction_matrix(fine, coarse, boundary, device="cpu"):
    """(coarse, fine) float64 M: the values at the `coarse` grid's pixel centres of the function
    a `fine`-pixel line's samples define through its modes below the coarse Nyquist frequency
    (docs/noise.md#one-seed-every-resolution). boundary "periodic": the Fourier modes |k| < coarse/2
    (both members of a fine pair +-coarse/2, over sqrt(2), on an even coarse grid's Nyquist
    mode); "reflect": the first `coarse` cosine modes (DCT-II). Either way M M^T = (coarse / fine) I,
    so white noise of pixel variance s^2 becomes white noise of pixel variance s^2 coarse / fine,
    the same white-noise measure's cell average at the coarse grid; fine == coarse gives I."""
    if not 1 <= coarse <= fine:
        raise ValueError(f"coarse ({coarse}) must be in [1, fine ({fine})]")
    if coarse == fine:
        return torch.eye(fine, dtype=torch.float64, device=device)
    if boundary != "periodic":
        return math.sqrt(coarse / fine) * dct_matrix(coarse, device).T @ dct_matrix(fine, device)[:coarse]
    # mode k of the fine samples seen at the coarse centres: a pair +-k adds
    # (2 / fine) cos(2 pi k (x_m - y_n)), x_m = (m + 1/2) / coarse, y_n = (n + 1/2) / fine
    x = (torch.arange(coarse, dtype=torch.float64, device=device)[:, None] + 0.5) / coarse
    y = (torch.arange(fine, dtype=torch.float64, device=device)[None, :] + 0.5) / fine
    m = torch.full((coarse, fine), 1.0 / fine, dtype=torch.float64, device=device)
    for k in range(1, (coarse + 1) // 2):
        m += 2.0 / fine * torch.cos(2 * math.pi * k * (x - y))
    if coarse % 2 == 0:  # the two fine modes +-coarse/2 land on one coarse mode, a real one
        m += math.sqrt(2.0) / fine * torch.cos(math.pi * coarse * (x - y))
    return m


class MollifiedDiffusion:
    """The diffusion process of a Config (its diffusion section and the training resolution).
    Times are integers t in [0, steps) (t = 0 is the least noisy state, as in DDPM code).

    Noise is one function-space measure at every resolution (docs/noise.md): white noise on
    [0, 1]^2 sampled as cell averages on an H x W grid has per-pixel std sqrt(H W) / R_train
    in units where it is 1 at the training resolution R_train, so T xi is a finer sampling of
    the same smooth random function whatever grid it is drawn on."""

    def __init__(self, cfg):
        d = cfg.diffusion
        self.steps = d.steps
        self.sigma = cfg.mollifier_sigma()
        self.train_resolution = cfg.data.resolution
        self.noise_mode = d.noise
        self.boundary = d.boundary
        self.nsr = d.wiener_nsr
        self.fine_grid = d.fine_grid
        self.ddpm_variance = d.ddpm_variance
        self.min_snr_gamma = d.min_snr_gamma
        self.loss_nsr = d.loss_wiener_nsr
        self.prediction = d.prediction
        self.noise_grid = d.noise_grid
        self.alpha_bar = cosine_alpha_bar(d.steps)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        self.alpha_bar_prev = prev
        self.betas = 1 - self.alpha_bar / prev

    def noise_std(self, size):
        """Per-pixel std of the cell-averaged white noise on a grid of `size` (H, W)."""
        if self.noise_mode == "pixel":
            return 1.0
        h, w = size
        return math.sqrt(h * w) / self.train_resolution

    def white_noise(self, shape, generator=None, device="cpu", dtype=torch.float32):
        """Cell averages xi of white noise on a grid of `shape` (..., H, W)."""
        z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        return z.mul_(self.noise_std(shape[-2:]))

    # ------------------------------------------------------------ forward process
    def mollify(self, u):
        return kernels.mollify(u, self.sigma, boundary=self.boundary) if self.sigma > 0 else u

    def signal_noise_scales(self, t, device, dtype):
        """(sqrt(abar_t), sqrt(1 - abar_t)), each (B,) of `dtype` on `device`, for integer times t (B,)."""
        abar = self.alpha_bar.to(device)[t]
        return abar.sqrt().to(dtype), (1 - abar).sqrt().to(dtype)

    def q_sample(self, x0, t, noise):
        """x_t for integer times t (B,) and white noise of x0's shape (one fused op)."""
        a, s = self.signal_noise_scales(t, x0.device, x0.dtype)
        if self.sigma == 0:
            view = (-1,) + (1,) * (x0.dim() - 1)
            return a.view(view) * x0 + s.view(view) * noise
        return kernels.q_sample(x0, noise, a, s, self.sigma, boundary=self.boundary)

    def noise_like(self, shape, generator=None, device="cpu", dtype=torch.float32):
        """Mollified white noise T xi on a grid of `shape` (B, C, H, W). diffusion.noise_grid F > 0:
        xi is white noise drawn on F x F and restricted to (H, W) by `restriction_matrix`, so the
        same generator state gives the same function on every grid up to F."""
        if not self.noise_grid:
            z = kernels.mollified_noise(shape, self.sigma, boundary=self.boundary, generator=generator, device=device,
                                        dtype=dtype)
            return z.mul_(self.noise_std(shape[-2:]))
        f = self.noise_grid
        h, w = shape[-2:]
        if h > f or w > f:
            raise ValueError(f"diffusion.noise_grid: the noise is drawn on {f} x {f}, coarser than the sampling grid "
                             f"{h} x {w}; set it to at least {max(h, w)} (or 0: drawn on the sampling grid)")
        xi = torch.randn((*shape[:-2], f, f), generator=generator, device=device, dtype=torch.float64)
        xi *= self.noise_std((f, f))
        if (h, w) != (f, f):  # on F x F itself the restriction is the identity
            rows = restriction_matrix(f, h, self.boundary, device)
            cols = rows if w == h else restriction_matrix(f, w, self.boundary, device)
            xi = rows @ xi @ cols.T
        return self.mollify(xi.to(dtype))

    def training_loss(self, model, x0, fraction, generator=None, encoder_fraction=None):
        """Mean over examples of ||f(x_t, t) - target||^2 averaged over a random subset of
        round(fraction * H * W) pixels drawn independently per example; the target is T xi, or
        with diffusion.prediction v, sqrt(abar_t) T xi - sqrt(1 - abar_t) T x0. x0 (B, C, H, W) may be
        at any resolution: the noise is the same measure's discretisation there, and the network
        runs with its kernels resampled by H / the training resolution.
        encoder_fraction (autoencoder mode): the model also gets the clean x0 on its own random
        subset of that share of the pixels, to encode into the latent it is conditioned on."""
        b, _, h, w = x0.shape
        device = x0.device
        t = torch.randint(0, self.steps, (b,), generator=generator, device=device)
        noise = self.white_noise(x0.shape, generator, device, x0.dtype)
        xt = self.q_sample(x0, t, noise)
        if self.prediction == "v":
            view = (-1,) + (1,) * (x0.dim() - 1)
            a, s = (v.view(view) for v in self.signal_noise_scales(t, device, x0.dtype))
            target = self.mollify(a * noise - s * x0)
        else:
            target = self.mollify(noise)
        n = max(1, round(fraction * h * w))
        coords = kernels.random_coords(b, (h, w), count=n, generator=generator, device=device)
        kw = {} if h == self.train_resolution else {"scale": h / self.train_resolution}
        if encoder_fraction is not None:  # drawn after the plain draws: a plain run's stream is unchanged
            m = max(1, round(encoder_fraction * h * w))
            ecoords = kernels.random_coords(b, (h, w), count=m, generator=generator, device=device)
            kw["source"] = (kernels.gather_points(x0, ecoords), ecoords, (h, w))
        pred = model(kernels.gather_points(xt, coords), coords, (h, w), t, **kw)
        residual = pred.float() - kernels.gather_points(target, coords).float()  # (B, n, C)
        if self.loss_nsr > 0:
            # The residual on the grid, zero off the drawn points (none on every pixel, where the
            # points are the grid in ascending row-major order). For a uniform subset of a share p
            # of the pixels, E|W(m r)|^2 = p^2 |W r|^2 + p (1 - p) mean(W^2) |r|^2, so dividing by
            # p mean(W^2) gives p * (the Wiener loss) + (1 - p) * (the plain loss) in expectation:
            # an unbiased estimate of the Wiener loss alone would subtract the second term, which
            # is an indefinite form on the drawn points (a loss with no lower bound).
            p = n / (h * w)
            on_grid, _ = kernels.scatter_points(residual, coords, (h, w), check=False)
            filtered = kernels.wiener(on_grid, self.sigma, nsr=self.loss_nsr, boundary=self.boundary)
            err = filtered.pow(2).flatten(2) / (p * self.wiener_gain_power((h, w)))  # (B, C, H*W)
        else:
            err = residual.pow(2)  # (B, n, C)
        if not self.min_snr_gamma:
            return err.mean()
        return (err.mean((1, 2)) * self.loss_weights(t)).mean()

    def mollifier_response(self, k2):
        """G = exp(-2 pi^2 sigma^2 |k|^2): the factor T puts on the basis function of squared
        wavenumber k2 (cycles per unit length; a tensor of any shape), 1 where sigma is 0."""
        return torch.exp(-2 * math.pi**2 * self.sigma**2 * k2)

    def wiener_gain_power(self, size):
        """mean(W^2) over the basis of an (H, W) grid that the loss's Wiener filter W = G / (G^2 + nsr)
        is diagonal in (Fourier for periodic, cosine for reflect): dividing by it gives a white
        residual the plain loss's value, so train.lr and train.grad_clip keep their meaning."""
        g = self.mollifier_response(self.mollifier_basis(size)[0])
        return float((g / (g * g + self.loss_nsr)).square().mean())

    def loss_weights(self, t):
        """(B,) float32 Min-SNR-gamma weights of integer times t (B,): min(SNR_t, gamma) / SNR_t
        for a noise prediction, min(SNR_t, gamma) / (SNR_t + 1) for v (the same weight on the
        error of the T x0 estimate, which is SNR_t, or SNR_t + 1, times the network's)."""
        abar = self.alpha_bar.to(t.device)[t]
        snr = abar / (1 - abar)
        return (snr.clamp(max=self.min_snr_gamma) / (snr + 1 if self.prediction == "v" else snr)).float()

    # ------------------------------------------------------------ reverse process
    def timesteps(self, count, start=None):
        """`count` evenly spaced times from `start` (default steps-1) down to 0."""
        return strided_times(self.steps, count, start)

    def phase_factor(self, size):
        """m when the network runs on the m x m interleaved sub-grids of an (H, W) grid
        (diffusion.fine_grid phases and H = m * the training resolution, m >= 2), else 1."""
        h, w = size
        r = self.train_resolution
        if self.fine_grid != "phases" or h <= r:
            return 1
        if h % r or w != h:
            raise ValueError(f"diffusion.fine_grid: phases runs the network on sub-grids of the training spacing, so it "
                             f"needs a square grid whose side is a whole multiple of data.resolution ({r}), got {h} x {w}; "
                             f"sample at {2 * r}, {3 * r}, ... or set diffusion.fine_grid resample")
        return h // r

    def predict_noise(self, model, x, t, scale=1.0):
        """The network's estimate of T xi (B, C, H, W) from the state x (B, C, H, W) on every pixel
        at the integer time t. scale: H / the training resolution (the kernels' resampling).
        diffusion.prediction v: the network's v turned into T xi = sqrt(abar_t) v + sqrt(1 - abar_t) x_t.

        diffusion.fine_grid phases, H = m R_train: sub-grid (i, j) holds pixels (m a + i, m b + j),
        the function sampled at the training spacing shifted by ((i, j) + 1/2) / m - 1/2 of a
        training pixel, which the network takes as one training-resolution image (scale 1): a
        stationary law is the same law shifted, and near it the network sees what it was trained
        on. The four-way (or m^2-way) reshape is a permutation, so autograd (guided sampling) runs
        through it."""
        b, c, h, w = x.shape
        m = self.phase_factor((h, w))
        if m > 1:
            sub = x.reshape(b, c, h // m, m, w // m, m).permute(0, 3, 5, 1, 2, 4).reshape(b * m * m, c, h // m, w // m)
            out = self._network(model, sub, t)
            out = out.reshape(b, m, m, c, h // m, w // m).permute(0, 3, 4, 1, 5, 2).reshape(b, c, h, w)
        else:
            out = self._network(model, x, t, scale=scale)
        if self.prediction == "v":
            abar = float(self.alpha_bar[int(t)])
            return math.sqrt(abar) * out + math.sqrt(1 - abar) * x
        return out

    @staticmethod
    def _network(model, x, t, **kw):
        b, _, h, w = x.shape
        coords = kernels.grid_coords((h, w), b, device=x.device)
        tt = torch.full((b,), int(t), device=x.device, dtype=torch.long)
        pts = model(kernels.gather_points(x, coords), coords, (h, w), tt, **kw)
        return pts.to(x.dtype).transpose(1, 2).reshape(x.shape)

    @torch.no_grad()
    def sample(self, model, shape, steps=100, sampler="ddim", generator=None, device="cpu", scale=1.0,
               x_init=None, guidance=None, progress=None, start_t=None, post_step=None, dtype=torch.float32,
               clip=True):
        """Samples of `shape` (B, C, H, W) on the full grid: returns (decoded x0, T x0 estimate).

        sampler="ddim": deterministic given the initial noise, any number of steps.
        sampler="ddpm": ancestral, x_{t-1} = mu_theta(x_t) + sigma_t T z, over `steps` strided
        times (respaced betas). scale: resolution / training resolution (kernel resampling).
        x_init, start_t: begin from the state x_init at time start_t (default: fresh mollified
        noise at steps-1), e.g. a noised image for inpainting or super-resolution.
        guidance(x_t, x0_estimate, t) -> correction subtracted from x_{t-1} (reconstruction
        guidance); it is called with gradients enabled, x_t requiring grad.
        post_step(x_{t-1}, t-1) -> x_{t-1}: e.g. replacing observed pixels (t-1 = -1: final).
        clip=False keeps the estimate of T x0 unclipped: DDIM is then the exact reverse of
        `invert`'s steps (decoding a stochastic encoding)."""
        h, w = shape[-2:]
        self.phase_factor((h, w))  # a grid diffusion.fine_grid cannot split is refused before any work
        x = self.noise_like(shape, generator, device, dtype) if x_init is None else x_init
        times = self.timesteps(steps, start_t)
        abar = self.alpha_bar.to(device)
        table = None  # the analytic variance's tables of the grid, built at its first step
        for i, t in enumerate(times.tolist()):
            prev = times[i + 1].item() if i + 1 < len(times) else -1
            a_t = abar[t].float()
            a_prev = abar[prev].float() if prev >= 0 else torch.tensor(1.0, device=device)

            def eps_fn(xx, t=t):
                return self.predict_noise(model, xx, t, scale)

            if guidance is not None:
                with torch.enable_grad():
                    xg = x.detach().requires_grad_(True)
                    eps = eps_fn(xg)
                    x0_t = (xg - (1 - a_t).sqrt() * eps) / a_t.sqrt()
                    correction = guidance(xg, x0_t, t)
                eps, x0_t = eps.detach(), x0_t.detach()
            else:
                eps = eps_fn(x)
                x0_t = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
                correction = None
            # T x0 lies in [-1, 1] (a Gaussian blur of data in [-1, 1]); clipping the estimate
            # keeps the 1 / sqrt(abar_t) amplification at high noise from blowing up the state
            if clip:
                x0_t = x0_t.clamp(-1, 1)
                eps = (x - a_t.sqrt() * x0_t) / (1 - a_t).sqrt()
            if sampler == "ddim":
                x = a_prev.sqrt() * x0_t + (1 - a_prev).sqrt() * eps
            else:
                beta = 1 - a_t / a_prev
                mean = (a_prev.sqrt() * beta * x0_t + (1 - beta).sqrt() * (1 - a_prev) * x) / (1 - a_t)
                if prev >= 0:
                    small = (1 - a_prev) / (1 - a_t) * beta
                    z = self.noise_like(shape, generator, device, x.dtype)
                    if self.ddpm_variance == "analytic":
                        if table is None:
                            table = self.analytic_band_table((h, w), device)
                        std = self.analytic_step_variance(eps, a_t, a_prev, table).sqrt()
                        forward, inverse = table[2:]
                        x = mean + inverse(forward(z.double()) * std).to(x.dtype)
                    else:
                        x = mean + (beta if self.ddpm_variance == "large" else small).sqrt() * z
                else:
                    x = mean
            if correction is not None:
                x = x - correction
            if post_step is not None:
                x = post_step(x, prev)
            if progress is not None:
                progress(i + 1, len(times))
        return self.decode(x), x

    def mollifier_basis(self, size, device="cpu"):
        """The orthonormal basis of an (H, W) grid that the mollifier is diagonal in: (squared
        wavenumber of each basis function (H, W) float64, in cycles per unit length; forward
        transform; inverse). Periodic: the Fourier basis (fft2 / ifft2, norm "ortho", complex
        coefficients). Reflect: the cosine basis (DCT-II, orthonormal): the mollifier filters the
        even extension on [0, 2]^2 periodically (docs/ops.md#spectral-filters), so cosine index j
        is j / 2 cycles per unit length. Either way a white field of pixel variance s^2 has
        E|c|^2 = s^2 in every coefficient, and T multiplies coefficient k by G_k."""
        h, w = size
        if self.boundary == "periodic":
            ky, kx = (torch.fft.fftfreq(m, 1.0 / m, device=device, dtype=torch.float64) for m in (h, w))
            return (ky[:, None] ** 2 + kx[None, :] ** 2, lambda x: torch.fft.fft2(x, norm="ortho"),
                    lambda c: torch.fft.ifft2(c, norm="ortho").real)
        cy, cx = dct_matrix(h, device), dct_matrix(w, device)
        ky, kx = (torch.arange(m, device=device, dtype=torch.float64) / 2 for m in (h, w))
        return ky[:, None] ** 2 + kx[None, :] ** 2, lambda x: cy @ x @ cx.T, lambda c: cy.T @ c @ cx

    def analytic_band_table(self, size, device="cpu"):
        """What `analytic_step_variance` needs of an (H, W) grid alone: (band of each basis
        function (H*W,) int64, |k| rounded; the mollified noise's expected power per band (K,)
        float64, s^2 G_k^2 summed over the band's coefficients (s: the white noise's pixel std);
        the `mollifier_basis` transforms)."""
        k2, forward, inverse = self.mollifier_basis(size, device)
        bands = k2.sqrt().round().long().flatten()
        noise = self.noise_std(size) ** 2 * self.mollifier_response(k2).square().flatten()
        return bands, torch.bincount(bands, noise, int(bands.max()) + 1), forward, inverse

    def analytic_step_variance(self, eps, a_t, a_prev, table=None):
        """(H, W) float64: the DDPM step's variance per basis function of `mollifier_basis`
        (Fourier for periodic, cosine for reflect), in units of the mollified noise's power
        there, for the noise estimates eps (B, C, H, W) of a batch at abar_t.

        The step x_{t'} = mu + sigma T z has, for a law whose posterior is diagonal in that
        basis, the exact variance beta~ + c^2 Var(x0 | x_t) / N per mode (c = sqrt(abar_t') beta /
        (1 - abar_t), beta = 1 - abar_t / abar_t', N the noise's power), and Var(x0 | x_t) is
        (1 - abar_t) / abar_t times the share of the noise left unexplained, E Var(T xi | x_t) =
        N - E|eps|^2 (Bao et al. 2022, Analytic-DPM, their scalar; here per band: |k| rounded,
        E over the batch). The result is clamped to [beta~, beta], the two classical choices, as
        Analytic-DPM clips its estimate: the share is an estimate, 1e-5 of noise in it at abar_t
        ~ 1e-5 would be a variance of 1. table: `analytic_band_table` of the grid (built here when None)."""
        h, w = eps.shape[-2:]
        bands, noise, forward, _ = self.analytic_band_table((h, w), eps.device) if table is None else table
        got = forward(eps.double()).abs().square().mean(dim=(0, 1)).flatten()
        unexplained = (1 - torch.bincount(bands, got, noise.numel()) / noise).clamp(0, 1)
        a_t, a_prev = float(a_t), float(a_prev)
        beta = 1 - a_t / a_prev
        small = (1 - a_prev) / (1 - a_t) * beta
        c2 = a_prev * beta**2 / (1 - a_t) ** 2
        var = (small + c2 * (1 - a_t) / a_t * unexplained).clamp(small, beta)
        return var[bands].reshape(h, w)

    # The cosine schedule's last betas are clipped at 0.999, so abar falls to ~2e-9 at the last
    # time: a DDIM step from there divides the model's noise error by sqrt(abar) ~ 5e-5, and an
    # inversion up to it does not come back. abar >= 1e-4 bounds that gain at 100 (the linear
    # schedule of Preechakul et al.'s autoencoder ends at 4e-5).
    ENCODING_MIN_ALPHA_BAR = 1e-4

    def encoding_time(self):
        """The time a stochastic encoding ends at by default: the last with abar >= 1e-4."""
        return int((self.alpha_bar >= self.ENCODING_MIN_ALPHA_BAR).nonzero().max())

    @torch.no_grad()
    def invert(self, model, images, steps=100, end_t=None, scale=1.0):
        """Deterministic DDIM inversion (the stochastic encoding of a diffusion autoencoder):
        images (B, C, H, W) in [-1, 1] -> the state x_{end_t} (default `encoding_time()`) from which
        `sample(..., x_init=x, start_t=end_t, clip=False)` with the same `steps` returns them.
        It starts from T x0 and runs the sampler's times upwards, each step using the model's
        noise estimate at the current state (exact in the limit of many steps)."""
        h, w = images.shape[-2:]
        device = images.device
        self.phase_factor((h, w))
        times = self.timesteps(steps, self.encoding_time() if end_t is None else end_t).flip(0).tolist()
        abar = self.alpha_bar.to(device)
        x = self.mollify(images)
        a_prev = torch.tensor(1.0, device=device)
        for t in times:
            a_t = abar[t].float()
            eps = self.predict_noise(model, x, t, scale)
            x0_t = (x - (1 - a_prev).sqrt() * eps) / a_prev.sqrt()
            x = a_t.sqrt() * x0_t + (1 - a_t).sqrt() * eps
            a_prev = a_t
        return x

    def decode(self, tx0):
        """x0 from an estimate of T x0 by the Wiener filter, clipped to [-1, 1]."""
        if self.sigma == 0:
            return tx0.clamp(-1, 1)
        return kernels.wiener(tx0, self.sigma, nsr=self.nsr, boundary=self.boundary).clamp(-1, 1)
