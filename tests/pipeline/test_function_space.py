"""Function-space diffusion (python/infdiff/function_space.py): the noise laws per Fourier band
across resolutions, the VP schedule, the samplers against an exact score for Gaussian data,
sampler determinism, a short training run on GRF data, and argument errors."""
import math

import pytest
import torch

from infdiff.data.datasets import GaussianRandomFields, grf_pixel_std
from infdiff.function_space import FunctionSpaceDiffusion, trace_class_eigenvalues, trace_of_covariance
from infdiff.model.fno import FourierNeuralOperator

BANDS = [(1, 2), (2, 4), (4, 7)]  # |k| ranges (cycles per unit length) resolved by every grid tested


def band_power(u, band):
    """Mean |c_k|^2 over the samples u (N, H, W) and the modes with ky >= 1 and lo <= |k| < hi:
    those modes are independent complex Gaussians (the ky = 0 column holds conjugate pairs)."""
    h, w = u.shape[-2:]
    power = torch.fft.rfft2(u.double(), norm="forward").abs().pow(2).mean(0)  # (H, W // 2 + 1)
    return masked_mean(power, band)


def masked_mean(grid, band):
    """Mean of `grid` (H, W // 2 + 1) over ky >= 1 and lo <= |k| < hi; also the mode count."""
    h, w2 = grid.shape
    kx = torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64)
    ky = torch.arange(w2, dtype=torch.float64)
    k = (kx[:, None] ** 2 + ky[None, :] ** 2).sqrt()
    mask = (ky[None, :] >= 1) & (k >= band[0]) & (k < band[1])
    return float(grid[mask].mean()), int(mask.sum())


@pytest.mark.parametrize("kind", ["trace_class", "white"])
def test_noise_spectrum_per_band_matches_the_law_at_every_resolution(kind):
    process = FunctionSpaceDiffusion(noise=kind, alpha=2.0, tau=3.0, reference_resolution=16)
    samples = 300
    for resolution in (16, 32, 64):
        gen = torch.Generator().manual_seed(resolution)
        xi = process.noise_like((samples, resolution, resolution), gen, dtype=torch.float64)
        law = process.mode_variance((resolution, resolution))
        for band in BANDS:
            measured, count = band_power(xi, band)
            expected, _ = masked_mean(law, band)
            # each |c_k|^2 is exponential with mean lambda_k; the band mean of samples * count of
            # them has relative std at most 1 / sqrt(samples * count) (less where lambda varies);
            # 5 of those keeps a false alarm below 1e-6 per band
            tolerance = 5 / math.sqrt(samples * count)
            assert abs(measured / expected - 1) < tolerance, (kind, resolution, band, measured, expected)
    # the law itself does not depend on the grid: a band every grid resolves has the same modes and
    # the same variances on all three, up to float64 rounding
    expected = [masked_mean(process.mode_variance((r, r)), (2, 4))[0] for r in (16, 32, 64)]
    assert expected[0] == pytest.approx(expected[1], rel=1e-12) and expected[0] == pytest.approx(expected[2], rel=1e-12)


def test_trace_class_pixel_variance_converges_and_white_noise_diverges():
    trace = FunctionSpaceDiffusion(noise="trace_class", alpha=2.0, tau=3.0, reference_resolution=16)
    white = FunctionSpaceDiffusion(noise="white", reference_resolution=16)
    # the law: the pixel variance is the sum of the eigenvalues the grid resolves, which converges
    law = [trace.noise_scale**2 * trace_of_covariance(2.0, 3.0, r) for r in (16, 32, 64, 1024)]
    assert max(law) / min(law) - 1 < 0.01, law
    gen = torch.Generator().manual_seed(0)
    samples = 400
    white_var = []
    for resolution, expected in zip((16, 32, 64), law):
        xi = trace.noise_like((samples, resolution, resolution), gen, dtype=torch.float64)
        # the pixel mean of xi^2 is a sum of independent |c_k|^2 terms; its variance is at most
        # 2 sum_k lambda_k^2 over the full grid (conjugate pairs counted as one doubled term)
        lam = trace.mode_variance((resolution, resolution))
        spread = math.sqrt(4 * float(lam.pow(2).sum()) / samples)
        assert abs(float(xi.pow(2).mean()) - expected) < 5 * spread, (resolution, float(xi.pow(2).mean()), expected)
        white_var.append(float(white.noise_like((samples, resolution, resolution), gen, dtype=torch.float64).var()))
    # white noise: every doubling of the grid multiplies the pixel variance by 4
    assert 3.8 < white_var[1] / white_var[0] < 4.2 and 3.8 < white_var[2] / white_var[1] < 4.2, white_var


def test_trace_of_covariance_matches_the_dataset_pixel_std():
    for resolution in (15, 16, 33):
        assert trace_of_covariance(2.5, 4.0, resolution) == pytest.approx(grf_pixel_std(resolution, 2.5, 4.0) ** 2,
                                                                          rel=1e-12)


def test_reference_resolution_noise_has_unit_pixel_variance():
    process = FunctionSpaceDiffusion(noise="trace_class", alpha=2.0, tau=3.0, reference_resolution=32)
    var = float(process.noise_like((400, 32, 32), torch.Generator().manual_seed(1), dtype=torch.float64).var())
    assert abs(var - 1) < 0.05


def test_vp_schedule_against_numerical_integration():
    process = FunctionSpaceDiffusion(beta_min=0.1, beta_max=20.0)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    fine = torch.linspace(0, 1, 100001, dtype=torch.float64)
    integral = torch.cumulative_trapezoid(process.beta(fine), fine)
    integral = torch.cat([torch.zeros(1, dtype=torch.float64), integral])[::10000]
    torch.testing.assert_close(process.mean_coef(t), torch.exp(-0.5 * integral), rtol=1e-8, atol=0)
    torch.testing.assert_close(process.mean_coef(t) ** 2 + process.std_coef(t) ** 2, torch.ones_like(t))
    assert float(process.mean_coef(torch.ones(1, dtype=torch.float64))) < 0.01


class GaussianOracle(torch.nn.Module):
    """The exact noise predictor E[xi | u_t] when the data are N(0, D) and the noise N(0, L), both
    diagonal in Fourier: per mode, s L_k / (m^2 D_k + s^2 L_k) times the mode of u_t."""

    def __init__(self, process, data_var):
        super().__init__()
        self.process, self.data_var = process, data_var

    def forward(self, u, t):
        h, w = u.shape[-2:]
        lam = self.process.mode_variance((h, w))  # (H, W // 2 + 1)
        data = self.data_var((h, w))
        m = self.process.mean_coef(t.double()).view(-1, 1, 1, 1)
        s = self.process.std_coef(t.double()).view(-1, 1, 1, 1)
        gain = s * lam / (m**2 * data + s**2 * lam)
        return torch.fft.irfft2(torch.fft.rfft2(u.double()) * gain, s=(h, w)).to(u.dtype)


@pytest.mark.parametrize("sampler,steps", [("ode", 40), ("sde", 100)])
def test_samplers_reproduce_gaussian_data_with_the_exact_score(sampler, steps):
    process = FunctionSpaceDiffusion(noise="trace_class", alpha=2.0, tau=3.0, reference_resolution=16)

    def data_var(size):
        return 0.5 * trace_class_eigenvalues(size, 2.5, 5.0) / trace_class_eigenvalues((1, 1), 2.5, 5.0)[0, 0]

    oracle = GaussianOracle(process, data_var)
    samples = 300
    for resolution in (16, 32):
        x = process.sample(oracle, (samples, 1, resolution, resolution), steps=steps, sampler=sampler,
                           generator=torch.Generator().manual_seed(7), dtype=torch.float64)[:, 0]
        for band in BANDS:
            measured, count = band_power(x, band)
            expected, _ = masked_mean(data_var((resolution, resolution)), band)
            # sampling error 5 / sqrt(samples * count) as in the noise test, plus 5 % for the time
            # discretisation (Heun at 40 steps, Euler-Maruyama at 100) and the t_min cut-off
            tolerance = 5 / math.sqrt(samples * count) + 0.05
            assert abs(measured / expected - 1) < tolerance, (sampler, resolution, band, measured, expected)


@pytest.mark.parametrize("sampler", ["sde", "ode", "langevin"])
def test_samplers_are_deterministic_by_seed_at_any_resolution(sampler):
    process = FunctionSpaceDiffusion(reference_resolution=8)
    torch.manual_seed(0)
    model = FourierNeuralOperator(channels=1, width=4, modes=3, depth=1, time_dim=8)
    shapes = [(2, 1, 8, 8), (2, 1, 16, 16)]
    for shape in shapes:
        a = process.sample(model, shape, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(1))
        b = process.sample(model, shape, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(1))
        c = process.sample(model, shape, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(2))
        assert a.shape == shape and torch.isfinite(a).all()
        assert torch.equal(a, b)
        assert (a - c).abs().max() > 1e-3


def test_training_loss_is_deterministic_by_seed_and_any_resolution():
    process = FunctionSpaceDiffusion(reference_resolution=8)
    torch.manual_seed(0)
    model = FourierNeuralOperator(channels=1, width=4, modes=3, depth=1, time_dim=8)
    x0 = torch.randn(3, 1, 8, 8)
    a = process.training_loss(model, x0, torch.Generator().manual_seed(3))
    b = process.training_loss(model, x0, torch.Generator().manual_seed(3))
    c = process.training_loss(model, x0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(process.training_loss(model, torch.randn(2, 1, 20, 12), torch.Generator().manual_seed(3)))


def test_a_few_training_steps_on_grf_data_at_two_resolutions_lower_the_loss():
    process = FunctionSpaceDiffusion(noise="trace_class", alpha=2.0, tau=3.0, reference_resolution=16)
    torch.manual_seed(0)
    model = FourierNeuralOperator(channels=1, width=8, modes=6, depth=2, time_dim=16)
    data = {r: torch.stack([GaussianRandomFields(r, 16, seed=0, split="train", components=[(2.5, 5.0)])[i]
                            for i in range(16)]) for r in (16, 32)}

    def held_out_loss():
        # the same times and noise before and after training: a paired comparison
        with torch.no_grad():
            return sum(float(process.training_loss(model, data[r], torch.Generator().manual_seed(99)))
                       for r in data) / len(data)

    before = held_out_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(5)
    for step in range(60):
        # alternate the grid, as multilevel training would: one set of weights for both
        loss = process.training_loss(model, data[16 if step % 2 else 32], gen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = held_out_loss()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("kwargs,name", [
    ({"noise": "pink"}, "noise"), ({"alpha": 1.0}, "alpha"), ({"alpha": "2"}, "alpha"), ({"tau": 0.0}, "tau"),
    ({"beta_min": -1.0}, "beta_min"), ({"beta_max": 0.05}, "beta_max"), ({"t_min": 1.5}, "t_min"),
    ({"t_min": 0.0}, "t_min"), ({"reference_resolution": 0}, "reference_resolution"),
    ({"noise_scale": float("nan")}, "noise_scale"),
])
def test_process_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FunctionSpaceDiffusion(**kwargs)


def test_unknown_options_are_named():
    with pytest.raises(ValueError, match="sigma"):
        FunctionSpaceDiffusion.from_options({"alpha": 2.0, "sigma": 0.1})
    assert FunctionSpaceDiffusion.from_options({"alpha": 3.0}).alpha == 3.0


def test_call_errors_name_the_argument():
    process = FunctionSpaceDiffusion(reference_resolution=8)
    model = FourierNeuralOperator(channels=1, width=4, modes=3, depth=1, time_dim=8)
    for kwargs, name in (({"sampler": "ddim"}, "sampler"), ({"steps": 0}, "steps"), ({"steps": 2.0}, "steps"),
                         ({"langevin_steps": -1}, "langevin_steps"), ({"langevin_snr": 0}, "langevin_snr")):
        with pytest.raises(ValueError, match=name):
            process.sample(model, (1, 1, 8, 8), **kwargs)
    with pytest.raises(ValueError, match="shape"):
        process.sample(model, (1, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        process.noise_like((0, 8, 8))
    x0 = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="t must"):
        process.q_sample(x0, torch.zeros(3), x0)
    with pytest.raises(ValueError, match="noise must"):
        process.q_sample(x0, torch.zeros(2), torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match="x0 must"):
        process.training_loss(model, torch.zeros(1, 8, 8))
