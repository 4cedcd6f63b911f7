"""Tests of infdiff.evaluate.chain (the reverse chain's band power over the forward process's):
a perfect model of a GRF law keeps every band near 1 at every time, a model blind to the noise
in the fine bands shows excess there at the smallest times only, bad input is named, and the
command runs on a tiny checkpoint."""
import os

import pytest
import torch

from infdiff.config import load_config
from infdiff.diffusion import MollifiedDiffusion
from infdiff.evaluate import chain, grf

from .conftest import PRESETS, TINY
from .test_denoiser import PosteriorMeanOfNoise


class HalfBlindLate(PosteriorMeanOfNoise):
    """The posterior mean of the noise, but at t < 50 only half of it in the bands above `band`:
    a network that sees the fine bands' noise poorly at the smallest times (what the fine-band
    excess of a trained one looks like)."""

    def __init__(self, cfg, diffusion, band):
        super().__init__(cfg, diffusion)
        self.band = band

    def forward(self, x, coords, size, t, scale=1.0):
        out = super().forward(x, coords, size, t, scale)
        if int(t[0]) >= 50:
            return out
        h, w = size
        k = torch.fft.fftfreq(h, d=1.0 / h)
        gain = torch.where((k[:, None] ** 2 + k[None, :] ** 2).sqrt() <= self.band, 1.0, 0.5).double()
        b, n, c = out.shape
        grid = out.transpose(1, 2).reshape(b, c, h, w).double()
        grid = torch.fft.ifft2(torch.fft.fft2(grid) * gain).real
        return grid.reshape(b, c, h * w).transpose(1, 2).float()


def _setup():
    cfg = load_config(os.path.join(PRESETS, "grf_mixture.yaml"), {"data.name": "grf"})  # one law: linear posterior
    diffusion = MollifiedDiffusion(cfg)
    r = cfg.data.resolution
    return cfg, diffusion, r, grf.law_draws(cfg.data, 512, r, seed=3)[0]


def _perfect_chain(variance, steps=100):
    cfg, diffusion, r, images = _setup()
    diffusion.ddpm_variance = variance
    result = chain.chain_band_power(PosteriorMeanOfNoise(cfg, diffusion), diffusion, (128, 1, r, r), images, steps=steps)
    return cfg, r, result


def test_a_perfect_model_keeps_the_forward_process_power_in_every_band_at_every_time():
    """With the analytic step variance a perfect model's chain is the forward process run
    backwards, at 100 steps as at 1000: every state has the forward marginal's band power."""
    cfg, r, result = _perfect_chain("analytic")
    assert len(result["times"]) == 100 and result["times"][-1] == -1
    top = grf.resolved_top_band(cfg)
    inside = result["ratio"][:-1, 1 : r // 2]  # every visited state, bands 1 .. R/2 - 1
    # 128 samples (and 512 images for the reference): a band-1 power holds 4 x 128 independent
    # complex modes, ~9 % relative noise; measured 0.88..1.08 (seed 0)
    assert inside.min() > 0.8 and inside.max() < 1.2, inside
    out = result["ratio"][-1, 1 : top + 1]  # the output keeps >= 95 % of the resolved band's power
    assert out.min() > 0.8 and out.max() < 1.2, out


@pytest.mark.parametrize("variance", ["small", "large"])
def test_the_classical_step_variances_leave_the_forward_process_at_100_steps(variance):
    """What the analytic variance fixes: with 100 steps, Ho et al.'s small variance starves the
    bands the data fill (measured 0.39 of the forward power in band 12 at the last state) and the
    large one floods the bands only noise fills (5.8 in band 15)."""
    _, r, result = _perfect_chain(variance)
    last = result["ratio"][-2, 1 : r // 2]  # the state at t = 0
    assert last.min() < 0.6 if variance == "small" else last.max() > 3, last


def test_a_model_half_blind_to_the_fine_bands_late_shows_their_excess_from_then_on():
    cfg, diffusion, r, images = _setup()
    diffusion.ddpm_variance = "analytic"
    result = chain.chain_band_power(HalfBlindLate(cfg, diffusion, 6), diffusion, (64, 1, r, r), images, steps=100)
    times, ratio = result["times"], result["ratio"]
    before = times.index(max(t for t in times if t <= 100))
    assert ratio[before, 1 : r // 2].max() < 1.3  # the forward process's power, every band, until t = 50
    assert ratio[-1, 9:15].min() > 1.5  # then the noise left in the fine bands
    assert ratio[-1, 1:5].max() < 1.3  # and not in the coarse ones


class CosineLawPosteriorMeanOfNoise(torch.nn.Module):
    """E[T xi | x_t] for a law diagonal in the cosine basis (reflect boundary): coefficient j of
    `MollifiedDiffusion.mollifier_basis` has power P(k) = COSINE_LAW_POWER (1 + |k|^2)^(-2), k = j / 2
    cycles per unit length, so the data fill the coarse bands and noise the fine ones at small t
    (SNR ~1 at band 15 of the least noisy state). Per coefficient sqrt(1 - a) N / (a P + (1 - a) N)
    of x_t, N = 1 (white noise of unit pixel std at R_train, orthonormal basis)."""

    def __init__(self, diffusion):
        super().__init__()
        self.diffusion = diffusion
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def power(self, size):
        k2 = self.diffusion.mollifier_basis(size)[0]
        return COSINE_LAW_POWER * (1 + k2) ** -2

    def draws(self, n, size, seed):
        _, _, inverse = self.diffusion.mollifier_basis(size)
        z = torch.randn((n, 1) + tuple(size), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return inverse(z * self.power(size).sqrt()).float()

    def forward(self, x, coords, size, t, scale=1.0):
        h, w = size
        b, n, c = x.shape
        a = float(self.diffusion.alpha_bar[int(t[0])])
        gain = (1 - a) ** 0.5 / (a * self.power(size) + (1 - a))
        _, forward, inverse = self.diffusion.mollifier_basis(size)
        out = inverse(forward(x.transpose(1, 2).reshape(b, c, h, w).double()) * gain)
        return out.reshape(b, c, h * w).transpose(1, 2).float()


COSINE_LAW_POWER = 50.0


def test_analytic_variance_under_reflect_keeps_the_forward_process_power():
    """diffusion.boundary reflect: the mollifier is diagonal in the cosine basis, and so is the
    analytic step variance. A perfect model of a cosine-diagonal law keeps the forward process's
    power at every state at 100 steps (measured 0.84-1.06 over bands 1..15, seed 0; small and
    large give 0.82-1.07 on this law, whose spectrum does not starve under small as the GRF's does)."""
    cfg = load_config(os.path.join(PRESETS, "grf_mixture.yaml"), {"data.name": "grf", "diffusion.boundary": "reflect"})
    diffusion = MollifiedDiffusion(cfg)
    r = cfg.data.resolution
    model = CosineLawPosteriorMeanOfNoise(diffusion)
    images = model.draws(512, (r, r), seed=3)
    result = chain.chain_band_power(model, diffusion, (128, 1, r, r), images, steps=100)
    inside = result["ratio"][:-1, 1 : r // 2]  # every visited state, bands 1 .. R/2 - 1
    assert inside.min() > 0.8 and inside.max() < 1.2, inside  # sampling noise as in the periodic test


@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
def test_analytic_variance_reads_the_unexplained_share_band_by_band(boundary):
    """eps = the step's noise with the bands above 4 of the mollifier's basis removed: bands 1..4
    are explained (variance beta~, up to the batch's sampling noise), the rest not at all (the
    full share: Var(x0 | x_t) = (1 - abar_t) / abar_t N, clamped to beta). Exact only if the
    variance reads the same basis the noise was filtered in (cosine under reflect)."""
    cfg = load_config(os.path.join(PRESETS, "grf_mixture.yaml"), {"data.name": "grf", "diffusion.boundary": boundary})
    diffusion = MollifiedDiffusion(cfg)
    r = cfg.data.resolution
    k2, forward, inverse = diffusion.mollifier_basis((r, r))
    noise = diffusion.noise_like((256, 1, r, r), torch.Generator().manual_seed(4)).double()
    eps = inverse(forward(noise) * (k2.sqrt().round() <= 4))
    a_t, a_prev = 0.9, 0.95
    var = diffusion.analytic_step_variance(eps, a_t, a_prev)
    beta = 1 - a_t / a_prev
    small = (1 - a_prev) / (1 - a_t) * beta
    band = k2.sqrt().round()
    assert torch.allclose(var[band > 4], torch.tensor(beta, dtype=torch.float64), rtol=1e-12)
    # 256 draws: the unexplained share of band 1 (8 modes) is off by ~3 %; beta - beta~ = 0.026
    assert (var[band <= 4] - small).abs().max() < 0.1 * (beta - small)


def test_cosine_basis_diagonalises_the_reflect_mollifier():
    """mollifier_basis under reflect: the orthonormal DCT-II (scipy's, as a matrix), in which
    kernels.mollify multiplies coefficient j by G at j / 2 cycles per unit length."""
    import numpy as np
    import scipy.fft

    import infdiff_kernels as kernels
    from infdiff.diffusion import dct_matrix

    x = np.random.default_rng(0).standard_normal((12, 10))
    assert np.allclose(dct_matrix(12).numpy() @ x, scipy.fft.dct(x, axis=0, norm="ortho"), atol=1e-12)
    cfg = load_config(os.path.join(PRESETS, "mnist.yaml"))
    diffusion = MollifiedDiffusion(cfg)
    k2, forward, inverse = diffusion.mollifier_basis((20, 16))
    coefficients = torch.randn(3, 1, 20, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(forward(inverse(coefficients)), coefficients, atol=1e-12)  # orthonormal
    filtered = kernels.mollify(inverse(coefficients).float(), diffusion.sigma, boundary="reflect").double()
    # float32 filtering: ~1e-7 of the coefficients' size
    assert torch.allclose(forward(filtered), coefficients * diffusion.mollifier_response(k2), atol=1e-5)


def test_bad_input_is_named():
    cfg, diffusion, r, images = _setup()
    model = PosteriorMeanOfNoise(cfg, diffusion)
    with pytest.raises(ValueError, match="steps"):
        chain.chain_band_power(model, diffusion, (2, 1, r, r), images, steps=0)
    with pytest.raises(ValueError, match="images must be"):
        chain.chain_band_power(model, diffusion, (2, 1, 2 * r, 2 * r), images, steps=2)


def test_command_prints_the_visited_times_on_a_tiny_checkpoint(tmp_path, capsys):
    from infdiff.train import train

    cfg = load_config(TINY, {"train.out_dir": str(tmp_path / "run"), "train.steps": 3, "diffusion.boundary": "periodic"})
    ckpt = train(cfg, quiet=True).ckpt_path
    assert chain.main(["--ckpt", ckpt, "--n", "3", "--n-ref", "8", "--steps", "20", "--rows", "5", "--set",
                       "diffusion.sampler=ddpm", "--set", "diffusion.ddpm_variance=analytic"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("16 px:")
    rows = lines[2:]
    times = [int(line.split()[0]) for line in rows]
    assert 3 <= len(rows) <= 5 and times[-1] == -1 and times == sorted(times, reverse=True)
    assert all(len(line.split()) == 1 + 16 // 2 - 1 for line in rows)
    with pytest.raises(SystemExit):
        chain.main(["--ckpt", ckpt, "--n", "0"])
    assert "--n must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        chain.main(["--ckpt", ckpt, "--resolution", "2"])
    assert "--resolution must be >=" in capsys.readouterr().err
