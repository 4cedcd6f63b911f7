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
