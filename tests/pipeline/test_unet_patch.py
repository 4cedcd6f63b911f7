"""model.unet_patch: the grid U-Net's body on grid_size / p behind a p x p patch embedding and a
pixel shuffle, the k-NN lerp's grid unchanged; p = 1 is the plain U-Net of older checkpoints."""
import pytest
import torch

import infdiff_kernels as kernels
from infdiff.config import ConfigError, load_config
from infdiff.diffusion import MollifiedDiffusion
from infdiff.model import GridUNet, InfDiffNet, build_model
from infdiff.train import Trainer

from .conftest import TINY


def unet(patch, mults=(1, 2)):
    return GridUNet(8, 8, 8, list(mults), 1, 2, 0.0, 16, patch=patch)


def test_default_is_the_plain_unet():
    cfg = load_config(TINY)
    assert cfg.model.unet_patch == 1
    plain = build_model(cfg).unet
    assert plain.inp.kernel_size == (3, 3) and plain.inp.stride == (1, 1)
    assert len(plain.out) == 3 and plain.out[2].out_channels == cfg.model.channels
    # the same weight names with and without the patch, so a checkpoint's keys do not depend on it
    patched = build_model(load_config(TINY, {"model.unet_patch": 2})).unet
    assert list(plain.state_dict()) == list(patched.state_dict())
    torch.manual_seed(0)
    a = unet(1).state_dict()
    torch.manual_seed(0)
    b = GridUNet(8, 8, 8, [1, 2], 1, 2, 0.0, 16).state_dict()  # the call of code before the field
    assert all(torch.equal(a[k], b[k]) for k in a) and list(a) == list(b)


@pytest.mark.parametrize("patch", [2, 4])
def test_patched_unet_keeps_the_grid_and_runs_its_body_coarser(patch):
    net = unet(patch)
    seen = []
    net.down[0][0].register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[-1]))
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    out = net(x, torch.randn(2, 16))
    assert out.shape == (2, 8, 16, 16) and seen == [16 // patch]
    out.square().mean().backward()
    assert x.grad.abs().sum() > 0 and net.inp.weight.grad.abs().sum() > 0
    assert net.inp.weight.shape[-2:] == (patch, patch) and net.out[2].out_channels == 8 * patch * patch


def test_config_refuses_a_patch_the_grid_cannot_take():
    with pytest.raises(ConfigError, match="`model.unet_patch`"):
        load_config(TINY, {"model.unet_patch": 0})
    # tiny: grid 8, two levels: 8 is not a multiple of 3 * 2
    with pytest.raises(ConfigError, match="`model.grid_size`.*unet_patch"):
        load_config(TINY, {"model.unet_patch": 3})
    with pytest.raises(ConfigError, match="`model.grid_size`"):
        load_config(TINY, {"model.unet_patch": 8})


def test_a_training_step_and_sampling_at_twice_the_resolution(tiny_cfg):
    cfg = load_config(TINY, {"model.unet_patch": 2, "train.out_dir": tiny_cfg.train.out_dir})
    torch.manual_seed(0)
    trainer = Trainer(cfg, quiet=True)
    before = trainer.model.unet.inp.weight.detach().clone()
    x0 = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loss = trainer.train_step(x0)
    assert torch.isfinite(loss) and not torch.equal(before, trainer.model.unet.inp.weight)
    model = trainer.ema.eval()
    big, _ = MollifiedDiffusion(cfg).sample(model, (2, 1, 32, 32), steps=3, generator=torch.Generator().manual_seed(0),
                                             scale=2.0)
    assert big.shape == (2, 1, 32, 32) and torch.isfinite(big).all()


def test_the_semantic_encoder_takes_the_patch():
    cfg = load_config(TINY, {"model.unet_patch": 2, "model.autoencoder.enabled": True, "model.autoencoder.latent_dim": 8})
    model = InfDiffNet(cfg.model, 1).eval()
    assert model.semantic.unet_down.inp.stride == (2, 2)
    coords = kernels.random_coords(3, (16, 16), count=40, generator=torch.Generator().manual_seed(0))
    z = model.encode(torch.randn(3, 40, 1), coords, (16, 16))
    assert z.shape == (3, 8) and torch.isfinite(z).all()
