"""Tests of infdiff.evaluate.denoiser (per-band error of the noise prediction): the exact
posterior mean of a GRF law scores its Gaussian floor at 1x and 2x, predicting 0 scores 1,
bad input is named, and the command runs on a tiny checkpoint."""
import os

import pytest
import torch

from infdiff.config import load_config
from infdiff.diffusion import MollifiedDiffusion
from infdiff.evaluate import denoiser, grf

from .conftest import PRESETS, TINY


def _grf_cfg():
    # one law, so the posterior mean is a per-mode linear filter; periodic, so the mollifier is diagonal in fft2
    cfg = load_config(os.path.join(PRESETS, "grf_mixture.yaml"), {"data.name": "grf"})
    assert cfg.diffusion.boundary == "periodic"
    return cfg


class PosteriorMeanOfNoise(torch.nn.Module):
    """E[T xi | x_t] for the GRF law on the full grid: per mode sqrt(1 - a) N / (a P + (1 - a) N) x_t,
    P the law's per-mode power, N = 1 / R_train^2 (white noise of unit pixel std at R_train, fft2
    norm "forward"); the mollifier multiplies the state and the target alike and drops out."""

    def __init__(self, cfg, diffusion):
        super().__init__()
        self.cfg, self.diffusion = cfg, diffusion
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, coords, size, t, scale=1.0):
        h, w = size
        b, n, c = x.shape
        assert n == h * w  # the full grid, row-major, as band_errors passes it
        (alpha, tau, scale_law, _), = grf.components(self.cfg.data)
        power = scale_law**2 * grf.eigenvalues(h, alpha, tau).double()
        noise = 1.0 / self.cfg.data.resolution**2
        a = float(self.diffusion.alpha_bar[int(t[0])])
        gain = (1 - a) ** 0.5 * noise / (a * power + (1 - a) * noise)
        grid = x.transpose(1, 2).reshape(b, c, h, w).double()
        out = torch.fft.ifft2(torch.fft.fft2(grid) * gain).real
        return out.reshape(b, c, h * w).transpose(1, 2).float()


class Zero(torch.nn.Module):
    def forward(self, x, coords, size, t, scale=1.0):
        return torch.zeros_like(x)


@pytest.mark.parametrize("factor", [1, 2])
def test_posterior_mean_scores_its_gaussian_floor(factor):
    cfg = _grf_cfg()
    diffusion = MollifiedDiffusion(cfg)
    res = factor * cfg.data.resolution
    images, _ = grf.law_draws(cfg.data, 192, res, seed=2)
    result = denoiser.band_errors(PosteriorMeanOfNoise(cfg, diffusion), diffusion, images, times=(10, 100),
                                  scale=factor)
    top = cfg.data.resolution // 2 - 1
    ratio = result["err"][:, 1 : top + 1] / result["floor"][:, 1 : top + 1]
    # the floor is computed from the same images' per-mode power, so most of the sampling noise of
    # 192 draws cancels in the ratio: measured within 0.97..1.03 at both factors (seed 2); 0.9..1.11
    # leaves room for another torch's random stream while a missing sqrt(1 - a) (x0.06 at t = 10) fails
    assert ratio.min() > 0.9 and ratio.max() < 1.11, ratio
    # the floor spans the range that makes the table worth reading: hidden noise (~1) to plain noise (~0)
    assert result["floor"][0, 1] > 0.9 and result["floor"][1, top] < 0.05
    assert result["times"] == [10, 100]


def test_predicting_zero_scores_one_everywhere():
    cfg = _grf_cfg()
    diffusion = MollifiedDiffusion(cfg)
    images, _ = grf.law_draws(cfg.data, 8, cfg.data.resolution, seed=0)
    result = denoiser.band_errors(Zero(), diffusion, images, times=(0, 500))
    assert torch.allclose(result["err"][:, 1:], torch.ones_like(result["err"][:, 1:]))
    assert (result["floor"] >= 0).all() and (result["floor"] <= 1).all()
    assert (result["snr"][0, 1:] > result["snr"][1, 1:]).all()  # less noise at t = 0 than at t = 500
    # the same seed gives the same figures
    again = denoiser.band_errors(Zero(), diffusion, images, times=(0, 500))
    assert torch.equal(again["snr"], result["snr"])


def test_bad_input_is_named():
    cfg = _grf_cfg()
    diffusion = MollifiedDiffusion(cfg)
    images = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="times"):
        denoiser.band_errors(Zero(), diffusion, images, times=(cfg.diffusion.steps,))
    with pytest.raises(ValueError, match="times"):
        denoiser.band_errors(Zero(), diffusion, images, times=())
    with pytest.raises(ValueError, match="images"):
        denoiser.band_errors(Zero(), diffusion, torch.zeros(2, 8, 8), times=(0,))


def test_command_prints_a_row_per_time_on_a_tiny_checkpoint(tmp_path, capsys, monkeypatch):
    from infdiff.train import train

    cfg = load_config(TINY, {"train.out_dir": str(tmp_path / "run"), "train.steps": 3})
    ckpt = train(cfg, quiet=True).ckpt_path
    assert denoiser.main(["--ckpt", ckpt, "--resolution", "16", "32", "--times", "0", "50", "--n", "4"]) == 0
    out = capsys.readouterr().out
    for res in (16, 32):
        block = out.split(f"{res} px:")[1].splitlines()
        rows = [line for line in block[2:4]]
        assert [int(r.split()[0]) for r in rows] == [0, 50]
        top = 16 // 2 - 1  # the training grid's bands, at 2x too
        assert len(rows[0].split()) == 1 + top
    with pytest.raises(SystemExit):
        denoiser.main(["--ckpt", ckpt, "--n", "0"])
    assert "--n must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # tiny has 100 diffusion steps
        denoiser.main(["--ckpt", ckpt, "--times", "100"])
    assert "--times must be in [0, 100)" in capsys.readouterr().err
    assert denoiser.main(["--ckpt", ckpt, "--n", "2"]) == 0  # default times: those below 100
    assert [int(r.split()[0]) for r in capsys.readouterr().out.splitlines()[2:]] == [0, 10, 30]
    # an autoencoder's denoiser needs a latent per image: refused by name, not a traceback
    import infdiff.autoencoder

    monkeypatch.setattr(infdiff.autoencoder, "is_autoencoder", lambda cfg: True)
    with pytest.raises(SystemExit):
        denoiser.main(["--ckpt", ckpt])
    assert "autoencoder" in capsys.readouterr().err
