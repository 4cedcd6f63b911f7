import torch

from infdiff import _compat
from infdiff.diffusion import MollifiedDiffusion, cosine_alpha_bar
from infdiff.model import InfDiffNet, resampled_kernel_size


def test_cosine_schedule():
    abar = cosine_alpha_bar(1000)
    assert abar.shape == (1000,) and bool((abar[1:] < abar[:-1]).all())
    assert 0.99 < abar[0] < 1 and abar[-1] < 1e-3


def test_model_shapes_and_dtypes(tiny_cfg):
    torch.manual_seed(0)
    model = InfDiffNet(tiny_cfg.model, 1)
    coords = _compat.random_coords(3, (16, 16), count=40, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 40, 1)
    out = model(x, coords, (16, 16), torch.tensor([0, 5, 99]))
    assert out.shape == (3, 40, 1) and out.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, coords, (16, 16), torch.tensor([0, 5, 99]))
    assert out.shape == (3, 40, 1) and torch.isfinite(out.float()).all()


def test_model_at_twice_the_resolution(tiny_cfg):
    model = InfDiffNet(tiny_cfg.model, 1).eval()
    coords = _compat.grid_coords((32, 32), 2)
    out = model(torch.randn(2, 32 * 32, 1), coords, (32, 32), torch.tensor([3, 4]), scale=2.0)
    assert out.shape == (2, 1024, 1) and torch.isfinite(out).all()
    assert resampled_kernel_size(5, 2.0) == 9 and resampled_kernel_size(7, 0.1) == 1


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
