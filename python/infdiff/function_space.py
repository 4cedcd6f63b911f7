"""Function-space diffusion (Lim, Kovachki et al.; Hagemann et al.): a variance-preserving SDE
whose noise is a trace-class Gaussian measure N(0, C), C = tau^(2 alpha - 2) (tau^2 - Laplacian)^(-alpha)
on the periodic unit square, the noise-prediction (preconditioned) score-matching loss, and
reverse samplers (Euler-Maruyama SDE, Heun probability-flow ODE, annealed Langevin) at any
resolution. docs/function_space.md explains the choices.

States are dense periodic grids (B, C, H, W); a grid of any size is the sampling of one function,
and every law here is defined per Fourier mode so that it does not depend on the grid."""
import math

import infdiff_kernels as kernels
import torch

from .model.fno import fourier_resample

NOISE_KINDS = ("trace_class", "white")
SAMPLERS = ("sde", "ode", "langevin")


def trace_class_eigenvalues(size, alpha, tau, dtype=torch.float64, device="cpu"):
    """Eigenvalues lambda_k (H, W // 2 + 1) of C on the rfft2 grid of `size` (H, W), integer
    frequencies k (cycles per unit length): the per-mode variance E|c_k|^2 of a sample of N(0, C)."""
    h, w = size
    kx = torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64, device=device)
    ky = torch.fft.rfftfreq(w, d=1.0 / w, dtype=torch.float64, device=device)
    k2 = kx[:, None] ** 2 + ky[None, :] ** 2
    return (tau ** (2 * alpha - 2) * (4 * math.pi**2 * k2 + tau**2) ** (-alpha)).to(dtype)


def trace_of_covariance(alpha, tau, resolution):
    """sum_k lambda_k over the modes a resolution x resolution grid resolves: the pixel variance
    of N(0, C) there; it converges as the resolution grows because C is trace class (alpha > 1)."""
    lam = trace_class_eigenvalues((resolution, resolution), alpha, tau)
    # rfft2 stores the kx axis whole and half the ky axis: count the mirrored columns twice
    weights = torch.full((lam.shape[-1],), 2.0, dtype=torch.float64)
    weights[0] = 1.0
    if resolution % 2 == 0:
        weights[-1] = 1.0
    return float((lam * weights).sum())


def vp_log_mean(t, beta_min, beta_max):
    """log m(t) = -1/2 int_0^t beta(s) ds for the linear schedule beta(s) = beta_min + s (beta_max - beta_min)."""
    return -0.5 * (beta_min * t + 0.5 * (beta_max - beta_min) * t**2)


def _check_positive(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


class FunctionSpaceDiffusion:
    """The forward SDE du = -1/2 beta(t) u dt + sqrt(beta(t)) dW, W a Wiener process with
    covariance `noise`'s law, on continuous times t in [0, 1]. Its marginal is
    u_t = m(t) u_0 + s(t) xi with xi from that law, m(t) = exp(-1/2 int_0^t beta), s = sqrt(1 - m^2).

    noise="trace_class": xi ~ N(0, C) (the kernels' gaussian_random_field), scaled by
    noise_scale (default: pixel std 1 at `reference_resolution`); one law at every resolution,
    its pixel variance converging as the grid is refined. noise="white": cell averages of white
    noise, flat spectrum, per-pixel std sqrt(H W) / reference_resolution (1 at the reference
    grid, the usual finite-dimensional DDPM noise there) -- it has no infinite-dimensional limit
    in L^2 and is here for comparison.

    The model F(u_t, t) predicts xi: the loss is E ||F(u_t, t) - xi||^2 in L^2 of the unit square
    (the pixel mean is its Riemann sum). This is Kovachki's preconditioned objective
    E ||xi + F(u + xi)||^2 with the sign of F flipped and the VP scaling: the minimiser is
    E[xi | u_t] = -s(t) C grad log p_t(u_t), the preconditioned score, which is in L^2 even
    though the plain score is not; and the target has the same finite norm (tr C) at every t and
    every resolution, so the loss has a limit as the grid is refined."""

    def __init__(self, noise="trace_class", alpha=2.0, tau=3.0, beta_min=0.1, beta_max=20.0, reference_resolution=32,
                 noise_scale=None, t_min=1e-3):
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
        _check_positive("tau", tau)
        _check_positive("beta_min", beta_min)
        _check_positive("beta_max", beta_max)
        _check_positive("t_min", t_min)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not (1 < alpha <= 1e30):
            raise ValueError(f"alpha must be a number in (1, 1e30] so that C is trace class in 2-D, got {alpha!r}")
        if beta_max < beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got beta_max={beta_max}, beta_min={beta_min}")
        if t_min >= 1:
            raise ValueError(f"t_min must be in (0, 1), got {t_min}")
        if isinstance(reference_resolution, bool) or not isinstance(reference_resolution, int) \
                or reference_resolution < 1:
            raise ValueError(f"reference_resolution must be an int >= 1, got {reference_resolution!r}")
        if noise_scale is not None:
            _check_positive("noise_scale", noise_scale)
        self.noise_kind = noise
        self.alpha, self.tau = float(alpha), float(tau)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.reference_resolution = reference_resolution
        self.t_min = float(t_min)
        if noise_scale is None:
            noise_scale = 1.0 if noise == "white" else 1.0 / math.sqrt(
                trace_of_covariance(alpha, tau, reference_resolution))
        self.noise_scale = float(noise_scale)

    @classmethod
    def from_options(cls, options):
        """The process of a mapping of constructor arguments (e.g. a config section); an unknown
        key is an error naming it rather than being ignored."""
        known = ("noise", "alpha", "tau", "beta_min", "beta_max", "reference_resolution", "noise_scale", "t_min")
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown function-space option(s) {unknown}; known: {list(known)}")
        return cls(**options)

    # ------------------------------------------------------------ schedule
    def beta(self, t):
        """beta(t) (B,) of times t (B,) in [0, 1]."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def mean_coef(self, t):
        """m(t) (B,) = E[u_t | u_0] / u_0 for times t (B,)."""
        return torch.exp(vp_log_mean(t, self.beta_min, self.beta_max))

    def std_coef(self, t):
        """s(t) (B,) = sqrt(1 - m(t)^2), the scale of the noise in u_t."""
        return (-torch.expm1(2 * vp_log_mean(t, self.beta_min, self.beta_max))).sqrt()

    # ------------------------------------------------------------ noise law
    def mode_variance(self, size, dtype=torch.float64, device="cpu"):
        """E|c_k|^2 (H, W // 2 + 1) of the noise's Fourier coefficients c_k (rfft2 / (H W)) on a
        grid of `size`: scale^2 lambda_k for trace-class noise, scale^2 / R_ref^2 for white noise."""
        if self.noise_kind == "trace_class":
            return self.noise_scale**2 * trace_class_eigenvalues(size, self.alpha, self.tau, dtype, device)
        h, w = size
        return torch.full((h, w // 2 + 1), self.noise_scale**2 / self.reference_resolution**2, dtype=dtype,
                          device=device)

    def noise_like(self, shape, generator=None, device=None, dtype=torch.float32):
        """A noise sample xi of `shape` (..., H, W) from the law of `noise`; deterministic given
        the generator. The device defaults to the generator's, else the CPU."""
        if len(shape) < 2 or any(int(n) < 1 for n in shape):
            raise ValueError(f"shape must be (..., H, W) with sizes >= 1, got {tuple(shape)}")
        if device is None:
            device = generator.device if generator is not None else "cpu"
        if self.noise_kind == "trace_class":
            xi = kernels.gaussian_random_field(tuple(shape), self.alpha, self.tau, generator=generator, dtype=dtype,
                                               device=device)
            return xi.mul_(self.noise_scale)
        h, w = shape[-2:]
        z = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
        return z.mul_(self.noise_scale * math.sqrt(h * w) / self.reference_resolution)

    # ------------------------------------------------------------ forward process
    def q_sample(self, x0, t, noise):
        """u_t = m(t) x0 + s(t) noise for x0, noise (B, C, H, W) and times t (B,)."""
        if t.dim() != 1 or t.shape[0] != x0.shape[0]:
            raise ValueError(f"t must have shape ({x0.shape[0]},) (one time per example), got {tuple(t.shape)}")
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
        view = (-1,) + (1,) * (x0.dim() - 1)
        m = self.mean_coef(t).to(x0.dtype).view(view)
        s = self.std_coef(t).to(x0.dtype).view(view)
        return m * x0 + s * noise

    def training_loss(self, model, x0, generator=None):
        """E ||model(u_t, t) - xi||^2 with t ~ U[t_min, 1] and xi from the noise law, for a batch
        x0 (B, C, H, W) at any resolution; the norm is the L^2 norm on the unit square (pixel mean)."""
        if x0.dim() != 4:
            raise ValueError(f"x0 must have shape (B, C, H, W), got {tuple(x0.shape)}")
        b = x0.shape[0]
        t = self.t_min + (1 - self.t_min) * torch.rand((b,), generator=generator, device=x0.device,
                                                       dtype=torch.float64)
        noise = self.noise_like(x0.shape, generator, x0.device, x0.dtype)
        xt = self.q_sample(x0, t, noise)
        pred = model(xt, t.to(x0.dtype))
        return (pred.float() - noise.float()).pow(2).mean()

    # ------------------------------------------------------------ reverse process
    def _noise_estimate(self, model, x, t):
        """eps = model(x, t) for a state x (B, C, H, W) and one float time t shared by the batch."""
        tt = torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)
        return model(x, tt).to(x.dtype)

    def _denoised(self, x, eps, t):
        """E[u_0 | u_t = x] = (x - s eps) / m for x, eps (B, C, H, W) at the float time t."""
        tt = torch.tensor([t], dtype=torch.float64)
        m, s = float(self.mean_coef(tt)), float(self.std_coef(tt))
        return (x - s * eps) / m

    @torch.no_grad()
    def sample(self, model, shape, steps=100, sampler="sde", generator=None, device=None, dtype=torch.float32,
               langevin_steps=2, langevin_snr=0.1, post_step=None):
        """Samples of `shape` (B, C, H, W) at any resolution from noise of the same law, by
        integrating the reverse process from t = 1 down to t_min in `steps` uniform steps, and
        returning the denoised estimate (u - s eps) / m at t_min. Deterministic given the
        generator (which also fixes the device unless `device` is given).

        sampler="sde": Euler-Maruyama on the reverse SDE
            du = [-1/2 beta u + beta eps / s] dt + sqrt(beta) dW   (backwards in time),
        using C grad log p_t = -eps / s.
        sampler="ode": Heun's method on the probability-flow ODE du/dt = -1/2 beta u + 1/2 beta eps / s;
        random only through the initial state.
        sampler="langevin": annealed Langevin -- at each of `steps` noise levels, `langevin_steps`
        preconditioned Langevin moves u += d C grad log p_t + sqrt(2 d) xi, xi ~ N(0, C), with d
        set from `langevin_snr` (Song et al.'s corrector), then one step of the SDE to the next level.
        post_step(x, t_next) -> x, if given, edits the state after each step (`superres` uses it)."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        if isinstance(langevin_steps, bool) or not isinstance(langevin_steps, int) or langevin_steps < 0:
            raise ValueError(f"langevin_steps must be an int >= 0, got {langevin_steps!r}")
        _check_positive("langevin_snr", langevin_snr)
        if len(shape) != 4 or any(int(n) < 1 for n in shape):
            raise ValueError(f"shape must be (B, C, H, W) with sizes >= 1, got {tuple(shape)}")
        if device is None:
            device = generator.device if generator is not None else "cpu"
        times = torch.linspace(1.0, self.t_min, steps + 1, dtype=torch.float64).tolist()
        x = self.noise_like(shape, generator, device, dtype)
        for i in range(steps):
            t, t_next = times[i], times[i + 1]
            dt = t - t_next
            tt = torch.tensor([t], dtype=torch.float64)
            beta, s = float(self.beta(tt)), float(self.std_coef(tt))
            if sampler == "langevin":
                x = self._langevin(model, x, t, s, langevin_steps, langevin_snr, generator)
            eps = self._noise_estimate(model, x, t)
            if sampler == "ode":
                drift = self._flow_drift(x, eps, beta, s)
                # Heun: average the slope at t and at the Euler prediction for t_next
                x_pred = x - dt * drift
                tn = torch.tensor([t_next], dtype=torch.float64)
                eps_n = self._noise_estimate(model, x_pred, t_next)
                drift_n = self._flow_drift(x_pred, eps_n, float(self.beta(tn)), float(self.std_coef(tn)))
                x = x - 0.5 * dt * (drift + drift_n)
            else:
                # the reverse SDE's drift: the forward drift minus beta times the preconditioned score
                drift = -0.5 * beta * x + beta * eps / s
                x = x - dt * drift + math.sqrt(beta * dt) * self.noise_like(shape, generator, device, dtype)
            if post_step is not None:
                x = post_step(x, t_next)
        return self._denoised(x, self._noise_estimate(model, x, self.t_min), self.t_min)

    @torch.no_grad()
    def superres(self, model, low, resolution, steps=100, sampler="sde", generator=None, dtype=torch.float32):
        """Super-resolution as Lim et al. condition on a low-resolution input: low (B, C, r, r) fixes
        the Fourier modes its grid holds strictly below its Nyquist frequency (the band); the reverse
        process at `resolution` R > r has those modes of its state replaced after every step by the
        input's, noised to the step's time (m(t) low + s(t) xi, xi of the process's law), and
        samples the rest; the result's band is the input's exactly. (B, C, R, R) on low's device."""
        if low.dim() != 4 or low.shape[-1] != low.shape[-2]:
            raise ValueError(f"low must have shape (B, C, r, r), got {tuple(low.shape)}")
        r = low.shape[-1]
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= r:
            raise ValueError(f"resolution must be an int above the input's {r} px, got {resolution!r}")
        size = (resolution, resolution)
        observed = fourier_resample(low.to(dtype), size)  # the band-limited input on the fine grid

        def band(x):
            return fourier_resample(fourier_resample(x, (r, r)), size)

        def replace_band(x, t):
            tt = torch.tensor([t], dtype=torch.float64)
            xi = self.noise_like(x.shape, generator, x.device, x.dtype)
            noised = float(self.mean_coef(tt)) * observed + float(self.std_coef(tt)) * band(xi)
            return x - band(x) + noised

        x = self.sample(model, (low.shape[0], low.shape[1]) + size, steps=steps, sampler=sampler, generator=generator,
                        device=low.device, dtype=dtype, post_step=replace_band)
        return x - band(x) + observed

    @staticmethod
    def _flow_drift(x, eps, beta, s):
        """du/dt (B, C, H, W) of the probability-flow ODE at x, eps (B, C, H, W): the forward drift
        minus half beta times the preconditioned score -eps / s (half, because the ODE carries no
        noise of its own)."""
        return -0.5 * beta * x + 0.5 * beta * eps / s

    def _langevin(self, model, x, t, s, count, snr, generator):
        """`count` preconditioned Langevin moves of x (B, C, H, W) at level t. The C-preconditioned
        score is -eps / s; the step d = 2 (snr ||xi|| / ||eps / s||)^2 per example makes the drift a
        fixed fraction of the injected noise, Song et al.'s corrector heuristic with both norms
        taken in L^2 of the unit square (finite for trace-class xi)."""
        for _ in range(count):
            eps = self._noise_estimate(model, x, t)
            xi = self.noise_like(x.shape, generator, x.device, x.dtype)
            score_norm = (eps / s).pow(2).mean(dim=(1, 2, 3)).sqrt().clamp_min(1e-12)
            noise_norm = xi.pow(2).mean(dim=(1, 2, 3)).sqrt()
            d = (2 * (snr * noise_norm / score_norm) ** 2).view(-1, 1, 1, 1)
            x = x - d * eps / s + (2 * d).sqrt() * xi
        return x
