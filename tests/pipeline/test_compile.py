"""torch.compile(fullgraph=True) of the network: every infdiff_kernels call in its forward is a
custom op with a fake kernel (docs/ops.md#torchcompile), so the whole forward and backward
is one graph, and the compiled model matches the eager one.

The compiler backend is "aot_eager": it runs everything the graph capture depends on (Dynamo
with fullgraph, the fake kernels, AOT autograd through the ops' registered backward) without
Inductor's code generation, which took 8.5 minutes for this model on the 2-core CI machine
(the same test with backend="inductor" passed when run by hand)."""
import pytest
import torch

import infdiff_kernels as ik
from infdiff.train import build_model


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    # Each test compiles anew: a cache left by another test would make it recompile with
    # dynamic sizes, which is not what the test is about.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _batch(cfg, coords):
    b, n, _ = coords.shape
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, n, cfg.data.channels, generator=g)
    t = torch.randint(0, cfg.diffusion.steps, (b,), generator=g)
    return x, t


def _model(cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    for block in list(model.to_grid.blocks) + list(model.decoder):  # blocks start as the identity: make them count
        torch.nn.init.normal_(block.mlp[-1].weight, std=0.5)
    return model


def test_compiled_training_step_matches_eager(tiny_cfg):
    """The training case: a random quarter of the pixels, forward and one backward."""
    model = _model(tiny_cfg)
    size = (tiny_cfg.data.resolution,) * 2
    coords = ik.random_coords(2, size, tiny_cfg.train.coord_fraction, generator=torch.Generator().manual_seed(0))
    x, t = _batch(tiny_cfg, coords)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)

    def loss_and_grads(net):
        model.zero_grad(set_to_none=True)
        out = net(x, coords, size, t)
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    out_eager, grads_eager = loss_and_grads(model)
    out_compiled, grads_compiled = loss_and_grads(compiled)
    torch.testing.assert_close(out_compiled, out_eager, rtol=1e-4, atol=1e-5)
    for name_param, got, want in zip(model.named_parameters(), grads_compiled, grads_eager):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name_param[0])


def test_compiled_full_grid_forward_matches_eager(tiny_cfg):
    """The sampling case (every pixel, at another resolution): eager takes the dense shortcut,
    the compiled graph the sparse path; the values agree."""
    model = _model(tiny_cfg).eval()
    size = (12, 12)
    coords = ik.grid_coords(size, 2)
    x, t = _batch(tiny_cfg, coords)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, coords, size, t, scale=0.75), model(x, coords, size, t, scale=0.75),
                                   rtol=1e-4, atol=1e-5)
