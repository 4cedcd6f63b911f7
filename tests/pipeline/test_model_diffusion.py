import pytest
import infdiff_kernels as kernels
import torch

from infdiff.model import network as network_module
from infdiff.model import sparse as sparse_module
from infdiff.model.sparse import dense_depthwise_conv
from infdiff.diffusion import MollifiedDiffusion, cosine_alpha_bar
from infdiff.model import InfDiffNet, resampled_kernel_size
from infdiff.config import ConfigError, load_config

from .conftest import TINY


def test_cosine_schedule():
    abar = cosine_alpha_bar(1000)
    assert abar.shape == (1000,) and bool((abar[1:] < abar[:-1]).all())
    assert 0.99 < abar[0] < 1 and abar[-1] < 1e-3


def test_model_shapes_and_dtypes(tiny_cfg):
    torch.manual_seed(0)
    model = InfDiffNet(tiny_cfg.model, 1)
    coords = kernels.random_coords(3, (16, 16), count=40, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 40, 1)
    out = model(x, coords, (16, 16), torch.tensor([0, 5, 99]))
    assert out.shape == (3, 40, 1) and out.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, coords, (16, 16), torch.tensor([0, 5, 99]))
    assert out.shape == (3, 40, 1) and torch.isfinite(out.float()).all()


def test_model_at_twice_the_resolution(tiny_cfg):
    model = InfDiffNet(tiny_cfg.model, 1).eval()
    coords = kernels.grid_coords((32, 32), 2)
    out = model(torch.randn(2, 32 * 32, 1), coords, (32, 32), torch.tensor([3, 4]), scale=2.0)
    assert out.shape == (2, 1024, 1) and torch.isfinite(out).all()
    assert resampled_kernel_size(5, 2.0) == 9 and resampled_kernel_size(7, 0.1) == 1


@pytest.mark.parametrize("normalize", ["partial", "mean", "none"])
@pytest.mark.parametrize("kernel_size", [1, 5, 9])
def test_dense_depthwise_conv_equals_the_sparse_op_on_the_full_grid(normalize, kernel_size):
    g = torch.Generator().manual_seed(kernel_size)
    size = (11, 13)  # not square: rows and columns must not be swapped
    h = torch.randn(2, 11 * 13, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(6, kernel_size, kernel_size, generator=g, dtype=torch.float64)
    bias = torch.randn(6, generator=g, dtype=torch.float64)
    coords = kernels.grid_coords(size, 2)
    sparse = kernels.sparse_depthwise_conv(h, coords, size, weight, bias, normalize)
    # 1e-12: float64 sums of <= 81 terms in another order
    torch.testing.assert_close(dense_depthwise_conv(h, size, weight, bias, normalize), sparse, rtol=1e-12, atol=1e-12)


def test_model_takes_the_dense_path_only_on_the_full_grid(tiny_cfg, monkeypatch):
    model = InfDiffNet(tiny_cfg.model, 1).eval()
    for block in list(model.to_grid.blocks) + list(model.decoder):  # non-trivial MLPs, so blocks matter
        torch.nn.init.normal_(block.mlp[-1].weight, std=0.5)
    coords = kernels.grid_coords((16, 16), 2)
    x, t = torch.randn(2, 256, 1, generator=torch.Generator().manual_seed(0)), torch.tensor([3, 40])
    calls = []
    monkeypatch.setattr(sparse_module, "dense_depthwise_conv", lambda *a: calls.append(1) or dense_depthwise_conv(*a))
    with torch.no_grad():
        dense = model(x, coords, (16, 16), t, scale=1.5)
        assert len(calls) == 2 * tiny_cfg.model.sparse_blocks  # encoder + decoder
        model(x[:, 1:], coords[:, 1:], (16, 16), t, scale=1.5)  # one pixel missing: sparse
        model(x.flip(1), coords.flip(1), (16, 16), t, scale=1.5)  # another order: sparse
        assert len(calls) == 2 * tiny_cfg.model.sparse_blocks
        monkeypatch.setattr(network_module, "_is_full_grid", lambda coords, size: False)
        sparse = model(x, coords, (16, 16), t, scale=1.5)
    torch.testing.assert_close(dense, sparse, rtol=1e-4, atol=1e-5)  # float32, other summation order


def test_q_sample_is_mollified_mix(tiny_cfg):
    diff = MollifiedDiffusion(tiny_cfg)
    x0, noise = torch.rand(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    t = torch.tensor([0, 50])
    xt = diff.q_sample(x0, t, noise)
    a = diff.alpha_bar[t].sqrt().float().view(2, 1, 1, 1)
    s = (1 - diff.alpha_bar[t]).sqrt().float().view(2, 1, 1, 1)
    torch.testing.assert_close(xt, diff.mollify(a * x0 + s * noise), atol=1e-5, rtol=1e-5)


def test_loss_falls_on_a_tiny_batch(tiny_cfg):
    torch.manual_seed(0)
    model = InfDiffNet(tiny_cfg.model, 1)
    diff = MollifiedDiffusion(tiny_cfg)
    x0 = torch.linspace(-1, 1, 16).view(1, 1, 1, 16).expand(4, 1, 16, 16).contiguous()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(50):
        loss = diff.training_loss(model, x0, 0.5, generator=torch.Generator().manual_seed(step % 5))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10


def test_min_snr_weights_and_loss(tiny_cfg):
    """Min-SNR-gamma: weight min(SNR, gamma) / SNR per example; a gamma above every time's SNR
    is the uniform loss, a smaller one scales each example's loss by its weight."""
    import dataclasses

    def with_gamma(gamma):
        return MollifiedDiffusion(dataclasses.replace(tiny_cfg, diffusion=dataclasses.replace(
            tiny_cfg.diffusion, min_snr_gamma=gamma)))

    diff = with_gamma(5.0)
    snr = diff.alpha_bar / (1 - diff.alpha_bar)
    t = torch.tensor([int((snr > 10).nonzero().max()), int((snr < 5).nonzero().min()), diff.steps - 1])
    w = diff.loss_weights(t)
    assert float(w[0]) == pytest.approx(5.0 / float(snr[t[0]]), rel=1e-6) and float(w[0]) < 0.5
    assert w[1:].tolist() == [1.0, 1.0]

    seen = []

    def zero_model(pts, coords, size, tt):  # error = the target itself; records each example's time
        seen.append(tt)
        return torch.zeros_like(pts)

    x0 = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    losses = {}
    for gamma in (0.0, float(snr.max()) * 2, 5.0):
        losses[gamma] = with_gamma(gamma).training_loss(zero_model, x0, 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(seen[0], seen[2])  # the same draws in every run
    torch.testing.assert_close(losses[float(snr.max()) * 2], losses[0.0])
    assert float(diff.loss_weights(seen[2]).min()) < 1  # this seed draws a low-noise time
    assert float(losses[5.0]) < float(losses[0.0])


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
def test_wiener_loss_is_the_filtered_residual_at_the_plain_scale(tiny_cfg, boundary):
    """diffusion.loss_wiener_nsr: the loss is mean(wiener(f - T xi)^2) / mean(W^2); with the model
    predicting 0 that is the filtered target, and a white residual keeps the plain loss's value."""
    import dataclasses

    cfg = dataclasses.replace(tiny_cfg, diffusion=dataclasses.replace(tiny_cfg.diffusion, boundary=boundary,
                                                                     loss_wiener_nsr=0.01))
    diff = MollifiedDiffusion(cfg)
    x0 = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def zero_model(pts, coords, size, tt):
        return torch.zeros_like(pts)

    loss = diff.training_loss(zero_model, x0, 1.0, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)  # the same draws, in training_loss's order
    torch.randint(0, diff.steps, (4,), generator=gen)
    target = diff.mollify(diff.white_noise(x0.shape, gen))
    expected = kernels.wiener(target, diff.sigma, nsr=0.01, boundary=boundary).pow(2).mean() / diff.wiener_gain_power((16, 16))
    torch.testing.assert_close(loss, expected)
    # the normaliser: white noise filtered by W has mean square mean(W^2) (its expectation; 512
    # images of 256 pixels put the estimate within ~1 %)
    z = torch.randn(512, 1, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ratio = kernels.wiener(z, diff.sigma, nsr=0.01, boundary=boundary).pow(2).mean() / diff.wiener_gain_power((16, 16))
    assert float(ratio) == pytest.approx(1.0, abs=0.03)
    assert diff.wiener_gain_power((16, 16)) > 1.5  # the fine bands are weighted up, not a no-op


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
def test_wiener_loss_on_a_subset_is_a_mix_of_the_wiener_and_plain_losses(tiny_cfg, boundary):
    """On a share p of the pixels the loss's expectation is p * (Wiener loss) + (1 - p) * (plain loss)
    of the same residual: here a fixed residual (a model predicting x_t's mollified-noise target
    plus a fixed field e), averaged over 400 draws of the subset."""
    import dataclasses

    cfg = dataclasses.replace(tiny_cfg, diffusion=dataclasses.replace(tiny_cfg.diffusion, boundary=boundary,
                                                                     loss_wiener_nsr=0.01))
    diff = MollifiedDiffusion(cfg)
    size = (16, 16)
    x0 = torch.zeros(2, 1, *size)
    # a smooth residual, which the Wiener loss weighs by ~1 / mean(W^2): the two losses differ
    e = 3 * diff.mollify(diff.mollify(torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(3))))

    def model_with_error(pts, coords, size_, tt, target):
        return kernels.gather_points(target + e, coords)

    def loss_at(fraction, seed):
        gen = torch.Generator().manual_seed(seed)
        # replay training_loss's draws to learn the target it will compare with
        replay = torch.Generator().manual_seed(seed)
        torch.randint(0, diff.steps, (2,), generator=replay)
        target = diff.mollify(diff.white_noise(x0.shape, replay))
        return float(diff.training_loss(lambda *a: model_with_error(*a, target), x0, fraction, generator=gen))

    wiener = kernels.wiener(e, diff.sigma, nsr=0.01, boundary=boundary).pow(2).mean() / diff.wiener_gain_power(size)
    plain = e.pow(2).mean()
    assert float(plain) > 1.5 * float(wiener)
    assert loss_at(1.0, 0) == pytest.approx(float(wiener), rel=1e-4)
    p = 0.25
    mean = sum(loss_at(p, s) for s in range(400)) / 400
    # the reflect boundary's (W^T W)_ii is not exactly mean(W^2) near the edges; 400 draws leave ~2 % noise
    assert mean == pytest.approx(p * float(wiener) + (1 - p) * float(plain), rel=0.06)


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_wiener_loss_config_trains(tmp_path, fraction):
    from infdiff.config import ConfigError, load_config
    from infdiff.train import train

    from .conftest import TINY

    with pytest.raises(ConfigError, match="diffusion.loss_wiener_nsr"):
        load_config(TINY, {"diffusion.loss_wiener_nsr": -1})
    cfg = load_config(TINY, {"diffusion.loss_wiener_nsr": 0.01, "train.coord_fraction": fraction,
                             "train.steps": 3, "train.out_dir": str(tmp_path / "run")})
    trainer = train(cfg, quiet=True)  # a diverged loss raises TrainingDiverged
    assert trainer.step == 3 and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_sampling_deterministic_by_seed_and_any_resolution(tiny_cfg):
    torch.manual_seed(0)
    model = InfDiffNet(tiny_cfg.model, 1).eval()
    diff = MollifiedDiffusion(tiny_cfg)

    def run(seed, res, sampler):
        g = torch.Generator().manual_seed(seed)
        return diff.sample(model, (2, 1, res, res), steps=3, sampler=sampler, generator=g, scale=res / 16)[0]

    for sampler in ("ddim", "ddpm"):
        a, b, c = run(0, 16, sampler), run(0, 16, sampler), run(1, 16, sampler)
        assert torch.equal(a, b) and not torch.equal(a, c)
    big = run(0, 32, "ddim")
    assert big.shape == (2, 1, 32, 32) and torch.isfinite(big).all() and big.abs().max() <= 1


@pytest.mark.parametrize("normalize", ["partial", "mean", "none"])
def test_circular_dense_conv_is_the_periodic_convolution(normalize):
    g = torch.Generator().manual_seed(3)
    size, k, c = (11, 13), 5, 4
    h = torch.randn(2, 11 * 13, c, generator=g, dtype=torch.float64)
    weight = torch.randn(c, k, k, generator=g, dtype=torch.float64)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    grid = h.transpose(1, 2).reshape(2, c, *size)
    ref = torch.zeros_like(grid)
    for i in range(k):  # out[y, x] = sum_ij w[i, j] in[(y + i - r) mod H, (x + j - r) mod W]
        for j in range(k):
            ref += weight[:, i, j].view(1, c, 1, 1) * torch.roll(grid, shifts=(k // 2 - i, k // 2 - j), dims=(2, 3))
    ref = ref / (k * k) if normalize == "mean" else ref  # every window is whole: partial scales by 1
    ref = ref.reshape(2, c, -1).transpose(1, 2) + bias
    out = dense_depthwise_conv(h, size, weight, bias, normalize, padding="circular")
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)  # float64, 25 terms in another order


def test_circular_block_commutes_with_a_periodic_shift(tiny_cfg):
    cfg = load_config(TINY, {"model.conv_padding": "circular", "diffusion.boundary": "periodic",
                             "train.coord_fraction": 1.0})
    block = sparse_module.sparse_blocks(cfg.model)[0].double()
    torch.nn.init.normal_(block.mlp[-1].weight, std=0.5)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 16, 16, 8, generator=g, dtype=torch.float64)
    temb = torch.randn(2, cfg.model.time_dim, generator=g, dtype=torch.float64)
    coords = kernels.grid_coords((16, 16), 2)
    run = lambda x: block(x.reshape(2, 256, 8), coords, (16, 16), temb, None, 1.0, True).reshape(2, 16, 16, 8)  # noqa: E731
    shifted = torch.roll(h, shifts=(3, -5), dims=(1, 2))
    torch.testing.assert_close(run(shifted), torch.roll(run(h), shifts=(3, -5), dims=(1, 2)), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="model.conv_padding circular: the network runs on full grids only"):
        block(h.reshape(2, 256, 8)[:, 1:], coords[:, 1:], (16, 16), temb, None, 1.0, False)


@pytest.mark.parametrize("overrides,field", [
    ({"diffusion.boundary": "reflect", "train.coord_fraction": 1.0}, "model.conv_padding"),
    ({"diffusion.boundary": "periodic", "train.coord_fraction": 0.25}, "train.coord_fraction"),
    ({"diffusion.boundary": "periodic", "train.coord_fraction": 1.0, "train.compile": True}, "train.compile"),
    ({"diffusion.boundary": "periodic", "train.coord_fraction": 1.0, "model.autoencoder.enabled": True},
     "model.conv_padding"),
])
def test_circular_padding_config_errors_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=f"`{field}"):
        load_config(TINY, {"model.conv_padding": "circular", **overrides})
    with pytest.raises(ConfigError, match="`model.conv_padding"):
        load_config(TINY, {"model.conv_padding": "wrap"})


def test_circular_model_trains_and_samples_at_twice_the_resolution(tmp_path):
    from infdiff.sample import Sampler
    from infdiff.train import Trainer

    cfg = load_config(TINY, {"model.conv_padding": "circular", "diffusion.boundary": "periodic",
                             "train.coord_fraction": 1.0, "train.steps": 3, "train.out_dir": str(tmp_path)})
    trainer = Trainer(cfg, quiet=True)
    trainer.fit()
    sampler = Sampler.from_checkpoint(trainer.ckpt_path, device="cpu")
    x = sampler.sample(2, 32, steps=2, generator=sampler.generator(0))
    assert x.shape == (2, 1, 32, 32) and torch.isfinite(x).all()
