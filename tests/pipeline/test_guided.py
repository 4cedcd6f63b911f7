import os

import pytest
import torch

from infdiff import guided, masks
from infdiff.cli import main
from infdiff.diffusion import MollifiedDiffusion
from infdiff.images import resize
from infdiff.model import InfDiffNet

from .conftest import TINY


@pytest.mark.parametrize("name", masks.MASK_SHAPES)
def test_named_masks_observe_some_and_fill_some(name):
    m = masks.named_mask(name, (16, 12), torch.Generator().manual_seed(1))
    assert m.shape == (1, 1, 16, 12) and set(m.unique().tolist()) == {0.0, 1.0}
    assert 0 < m.mean() < 1


def test_mask_png_white_is_filled(tmp_path):
    from PIL import Image

    arr = torch.zeros(8, 8, dtype=torch.uint8)
    arr[:, :3] = 255
    path = str(tmp_path / "m.png")
    Image.fromarray(arr.numpy()).save(path)
    m = masks.load_mask(path, (8, 8))
    assert m[0, 0, :, :3].sum() == 0 and m[0, 0, :, 3:].min() == 1
    with pytest.raises(ValueError, match="mask"):
        masks.load_mask("no-such-shape", (8, 8))


def _tiny(tiny_cfg):
    torch.manual_seed(0)
    return InfDiffNet(tiny_cfg.model, 1).eval(), MollifiedDiffusion(tiny_cfg)


def test_inpaint_keeps_observed_pixels_and_guidance_pulls_estimate(tiny_cfg):
    model, diff = _tiny(tiny_cfg)
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    mask = masks.named_mask("center", (16, 16))
    g = torch.Generator().manual_seed(0)
    out = guided.inpaint(model, diff, tiny_cfg, images, mask, steps=4, guidance_scale=2.0, generator=g)
    assert out.shape == images.shape and torch.isfinite(out).all()
    assert torch.equal(out * mask, images * mask)
    # without replacement, the guidance alone must move the observed region toward the images
    err = {}
    for lam in (0.0, 2.0):
        x = guided.guided_sample(model, diff, images, mask, 16, steps=4, guidance_scale=lam,
                                 generator=torch.Generator().manual_seed(0))
        err[lam] = ((x - images) * mask).pow(2).sum().item()
    assert err[2.0] < err[0.0]


def test_superres_output_size_and_consistency(tiny_cfg):
    model, diff = _tiny(tiny_cfg)
    low = torch.rand(2, 1, 16, 16) * 2 - 1
    err = {}
    for lam in (0.0, 1.0):
        out = guided.superres(model, diff, tiny_cfg, low, 32, steps=4, guidance_scale=lam,
                              generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 1, 32, 32) and torch.isfinite(out).all()
        err[lam] = (resize(out, (16, 16)) - low).pow(2).mean().item()
    assert err[1.0] < err[0.0]
    with pytest.raises(ValueError, match="start"):
        guided.superres(model, diff, tiny_cfg, low, 32, steps=2, start=0.0)


def test_inpaint_superres_cli(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--config", TINY, "--set", f"train.out_dir={run}", "--set", "train.steps=2"]) == 0
    ckpt = os.path.join(run, "checkpoint.pt")
    out = str(tmp_path / "inp")
    assert main(["--threads", "1", "inpaint", "--ckpt", ckpt, "--mask", "left-half", "--n", "2", "--steps", "2", "--out", out]) == 0
    assert set(os.listdir(out)) == {"inpaint_input.png", "inpainted.png", "inpaint_mask.png", "inpaint_masked.png"}
    out = str(tmp_path / "sr")
    assert main(["superres", "--ckpt", ckpt, "--resolution", "32", "--n", "2", "--steps", "2", "--out", out]) == 0, capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["superres_32px.png", "superres_bicubic_32px.png", "superres_input_16px.png"]
    # nothing to super-resolve at or below the input's resolution: refused before loading any image
    for res in ("16", "8"):
        assert main(["superres", "--ckpt", ckpt, "--resolution", res, "--steps", "2", "--out", out]) == 2
        assert f"--resolution {res} must be above the input resolution 16 px" in capsys.readouterr().err
    assert main(["inpaint", "--ckpt", ckpt, "--mask", "nowhere.png", "--out", out]) == 2
    assert "mask" in capsys.readouterr().err
