"""diffusion.prediction: the network predicts T xi ("eps") or v = sqrt(abar) T xi - sqrt(1 - abar) T x0."""
import pytest
import torch

import infdiff_kernels as kernels
from infdiff.config import ConfigError, load_config
from infdiff.diffusion import MollifiedDiffusion

from .conftest import TINY


def _diffusion(prediction, **extra):
    return MollifiedDiffusion(load_config(TINY, {"diffusion.prediction": prediction, **extra}))


def _scales(diffusion, t):
    abar = diffusion.alpha_bar[t].float().view(-1, 1, 1, 1)
    return abar.sqrt(), (1 - abar).sqrt()


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_an_exact_network_gives_the_mollified_noise_at_every_time(prediction):
    """A network that outputs its target exactly makes predict_noise return T xi, from the least
    noisy time to the last (where sqrt(abar) is ~1e-4 and x_t is almost all noise)."""
    diffusion = _diffusion(prediction)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 16, 16, generator=gen) * 2 - 1
    for t_int in (0, 50, diffusion.steps - 1):
        t = torch.full((2,), t_int)
        noise = diffusion.white_noise(x0.shape, gen)
        xt = diffusion.q_sample(x0, t, noise)
        a, s = _scales(diffusion, t)
        target = diffusion.mollify(noise) if prediction == "eps" else diffusion.mollify(a * noise - s * x0)

        def exact(pts, coords, size, tt, scale=1.0):
            return kernels.gather_points(target, coords)

        # float32: x_t and T xi are O(1) sums of O(1) terms, so a few ulps of 1
        torch.testing.assert_close(diffusion.predict_noise(exact, xt, t_int), diffusion.mollify(noise),
                                   atol=2e-6, rtol=0)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_the_loss_of_a_zero_network_is_the_mean_square_target(prediction):
    """Every pixel, plain loss: with f = 0 the loss is mean(target^2). x_t = a T x0 + s T xi gives
    T xi = (x_t - a T x0) / s and v = (a x_t - T x0) / s, so the target follows from the x_t the
    network was shown."""
    diffusion = _diffusion(prediction)
    x0 = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    seen = {}

    def zero(pts, coords, size, tt):
        seen.update(xt=pts.transpose(1, 2).reshape(x0.shape), t=tt)  # every pixel, row-major
        return torch.zeros_like(pts)

    loss = diffusion.training_loss(zero, x0, 1.0, generator=torch.Generator().manual_seed(2))
    a, s = _scales(diffusion, seen["t"])
    tx0 = diffusion.mollify(x0)
    target = (seen["xt"] - a * tx0) / s if prediction == "eps" else (a * seen["xt"] - tx0) / s
    # the division by s (0.04 at the least noisy time this seed draws) scales float32 rounding of
    # O(1) values by up to 25: a relative 1e-4 holds that with room
    assert float(s.min()) > 0.01
    torch.testing.assert_close(loss, target.pow(2).mean(), rtol=1e-4, atol=0)


def test_min_snr_weights_for_v_weight_the_x0_error_as_for_eps():
    """Min-SNR-gamma weights min(SNR, gamma) / SNR for eps and min(SNR, gamma) / (SNR + 1) for v:
    the error of the T x0 estimate is SNR (eps) or SNR + 1 (v) times the network's squared error."""
    gamma = 5.0
    eps, v = (_diffusion(p, **{"diffusion.min_snr_gamma": gamma}) for p in ("eps", "v"))
    t = torch.arange(0, eps.steps, 7)
    snr = eps.alpha_bar[t] / (1 - eps.alpha_bar[t])
    torch.testing.assert_close(eps.loss_weights(t), (snr.clamp(max=gamma) / snr).float())
    torch.testing.assert_close(v.loss_weights(t), (snr.clamp(max=gamma) / (snr + 1)).float())
    torch.testing.assert_close(v.loss_weights(t) * (snr + 1).float(), eps.loss_weights(t) * snr.float())


def test_prediction_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="`diffusion.prediction`.*must be one of"):
        load_config(TINY, {"diffusion.prediction": "x0"})
    with pytest.raises(ConfigError, match="`diffusion.prediction`.*model.family fno"):
        load_config("fno_grf", {"diffusion.prediction": "v"})


def test_a_v_model_trains_samples_and_refuses_an_eps_resume(tmp_path):
    from infdiff.sample import Sampler
    from infdiff.train import Trainer

    cfg = load_config(TINY, {"train.steps": 2, "train.out_dir": str(tmp_path), "diffusion.prediction": "v"})
    trainer = Trainer(cfg, quiet=True)
    trainer.fit()
    sampler = Sampler.from_checkpoint(trainer.ckpt_path, device="cpu")
    assert sampler.diffusion.prediction == "v"
    for sampler_name in ("ddpm", "ddim"):
        x = sampler.sample(2, 16, steps=3, sampler=sampler_name, generator=sampler.generator(0))
        assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()
    with pytest.raises(ValueError, match=r"diffusion\.prediction: checkpoint 'v', this config 'eps'"):
        Trainer(load_config(TINY, {"train.out_dir": str(tmp_path / "eps")}), resume=trainer.ckpt_path, quiet=True)
    with pytest.raises(ValueError, match="--set diffusion.prediction: only sampling settings"):  # a training field
        Sampler.from_checkpoint(trainer.ckpt_path, device="cpu", overrides={"diffusion.prediction": "eps"})
