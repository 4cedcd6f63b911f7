"""diffusion.fine_grid: how the network runs on a grid finer than the training one."""
import pytest
import torch

import infdiff_kernels as kernels
from infdiff.config import ConfigError, load_config
from infdiff.diffusion import MollifiedDiffusion
from infdiff.model import InfDiffNet

from .conftest import TINY


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    model = InfDiffNet(cfg.model, 1).eval()
    torch.nn.init.normal_(model.out.weight, std=0.5)  # a fresh output layer is near zero: make it say something
    return model


def _plain_call(model, x, t):
    """The network on every pixel of x (B, C, R, R) as one training-resolution image."""
    b, c, h, w = x.shape
    coords = kernels.grid_coords((h, w), b)
    pts = model(kernels.gather_points(x, coords), coords, (h, w), torch.full((b,), t))
    return pts.transpose(1, 2).reshape(x.shape)


@pytest.mark.parametrize("m", [2, 3])
def test_phases_run_the_network_on_each_training_spacing_sub_grid(m):
    cfg = load_config(TINY, {"diffusion.fine_grid": "phases"})
    r = cfg.data.resolution
    model, diffusion = _model(cfg), MollifiedDiffusion(cfg)
    x = torch.randn(2, 1, m * r, m * r, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = diffusion.predict_noise(model, x, 7, scale=m)
        ref = torch.empty_like(x)
        for i in range(m):
            for j in range(m):
                ref[..., i::m, j::m] = _plain_call(model, x[..., i::m, j::m].contiguous(), 7)
    # the same float32 ops; only the batch differs (the sub-grids go through as one batch), which
    # may change a matmul's blocking and so the last bits
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    resampled = MollifiedDiffusion(load_config(TINY)).predict_noise(model, x, 7, scale=m)
    assert (out - resampled).abs().max() > 1e-3  # the other mode really is another computation


def test_phases_leave_the_training_resolution_and_coarser_grids_to_the_plain_call():
    model = _model(load_config(TINY))
    phases = MollifiedDiffusion(load_config(TINY, {"diffusion.fine_grid": "phases"}))
    resample = MollifiedDiffusion(load_config(TINY))
    for res in (16, 8):
        x = torch.randn(1, 1, res, res, generator=torch.Generator().manual_seed(res))
        with torch.no_grad():
            assert torch.equal(phases.predict_noise(model, x, 3, res / 16), resample.predict_noise(model, x, 3, res / 16))
        assert phases.phase_factor((res, res)) == 1


def test_phases_refuse_a_grid_that_is_not_a_whole_multiple_naming_the_field():
    cfg = load_config(TINY, {"diffusion.fine_grid": "phases"})
    model, diffusion = _model(cfg), MollifiedDiffusion(cfg)
    for size in ((24, 24), (32, 24)):
        with pytest.raises(ValueError, match=r"diffusion.fine_grid: .* whole multiple of data.resolution \(16\)"):
            diffusion.phase_factor(size)
    with pytest.raises(ValueError, match="diffusion.fine_grid"):  # before any network call
        diffusion.sample(model, (1, 1, 24, 24), steps=2, scale=1.5)
    assert diffusion.phase_factor((48, 48)) == 3


def test_fine_grid_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="`diffusion.fine_grid"):
        load_config(TINY, {"diffusion.fine_grid": "subgrids"})
    with pytest.raises(ConfigError, match="`diffusion.fine_grid.*autoencoder"):
        load_config(TINY, {"diffusion.fine_grid": "phases", "model.autoencoder.enabled": True})


def test_a_trained_model_samples_and_super_resolves_with_phases(tmp_path):
    from infdiff.sample import Sampler
    from infdiff.train import Trainer

    cfg = load_config(TINY, {"train.steps": 2, "train.out_dir": str(tmp_path)})
    trainer = Trainer(cfg, quiet=True)
    trainer.fit()
    sampler = Sampler.from_checkpoint(trainer.ckpt_path, device="cpu", overrides={"diffusion.fine_grid": "phases"})
    assert sampler.diffusion.fine_grid == "phases"
    x = sampler.sample(2, 32, steps=2, sampler="ddpm", generator=sampler.generator(0))
    assert x.shape == (2, 1, 32, 32) and torch.isfinite(x).all()
    # guided sampling differentiates through the sub-grid split
    up = sampler.superres(x[:, :, ::2, ::2], 32, steps=2, generator=sampler.generator(1))
    assert up.shape == (2, 1, 32, 32) and torch.isfinite(up).all()
    with pytest.raises(ValueError, match="diffusion.fine_grid"):
        sampler.sample(1, 40, steps=2)


def test_band_errors_read_the_network_as_the_samplers_call_it():
    from infdiff.evaluate.denoiser import band_errors

    cfg = load_config(TINY)
    model = _model(cfg)
    images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    runs = {mode: band_errors(model, MollifiedDiffusion(load_config(TINY, {"diffusion.fine_grid": mode})), images,
                              times=(10,), scale=2.0)["err"] for mode in ("resample", "phases")}
    assert torch.isfinite(runs["phases"]).all() and not torch.allclose(runs["phases"], runs["resample"])
