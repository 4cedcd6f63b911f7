import math
import os

import pytest
import torch

from infdiff import guided, quality
from infdiff.cli import main
from infdiff.diffusion import MollifiedDiffusion
from infdiff.evaluate import features
from infdiff.model import InfDiffNet

from .conftest import TINY


@pytest.mark.parametrize("name", guided.MASK_SHAPES)
def test_named_masks_observe_some_and_fill_some(name):
    m = guided.named_mask(name, (16, 12), torch.Generator().manual_seed(1))
    assert m.shape == (1, 1, 16, 12) and set(m.unique().tolist()) == {0.0, 1.0}
    assert 0 < m.mean() < 1


def test_mask_png_white_is_filled(tmp_path):
    from PIL import Image

    arr = torch.zeros(8, 8, dtype=torch.uint8)
    arr[:, :3] = 255
    path = str(tmp_path / "m.png")
    Image.fromarray(arr.numpy()).save(path)
    m = guided.load_mask(path, (8, 8))
    assert m[0, 0, :, :3].sum() == 0 and m[0, 0, :, 3:].min() == 1
    with pytest.raises(ValueError, match="mask"):
        guided.load_mask("no-such-shape", (8, 8))


def _tiny(tiny_cfg):
    torch.manual_seed(0)
    return InfDiffNet(tiny_cfg.model, 1).eval(), MollifiedDiffusion(tiny_cfg)


def test_inpaint_keeps_observed_pixels_and_guidance_pulls_estimate(tiny_cfg):
    model, diff = _tiny(tiny_cfg)
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    mask = guided.named_mask("center", (16, 16))
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
        err[lam] = (guided.resize(out, (16, 16)) - low).pow(2).mean().item()
    assert err[1.0] < err[0.0]
    with pytest.raises(ValueError, match="start"):
        guided.superres(model, diff, tiny_cfg, low, 32, steps=2, start=0.0)


def test_inpaint_superres_cli(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--config", TINY, "--set", f"train.out_dir={run}", "--set", "train.steps=2"]) == 0
    ckpt = os.path.join(run, "checkpoint.pt")
    out = str(tmp_path / "inp")
    assert main(["--threads", "1", "inpaint", "--ckpt", ckpt, "--mask", "left-half", "--n", "2", "--steps", "2", "--out", out]) == 0
    assert set(os.listdir(out)) == {"inpaint_input.png", "inpaint_inpainted.png", "inpaint_mask.png", "inpaint_masked.png"}
    out = str(tmp_path / "sr")
    assert main(["superres", "--ckpt", ckpt, "--resolution", "32", "--n", "2", "--steps", "2", "--out", out]) == 0, capsys.readouterr().err
    assert "superres_superres_32px.png" in os.listdir(out)
    assert main(["inpaint", "--ckpt", ckpt, "--mask", "nowhere.png", "--out", out]) == 2
    assert "mask" in capsys.readouterr().err


def test_quality_scores_and_lenet_cache(tmp_path, monkeypatch):
    lenet = quality.LeNet().eval()
    s28 = quality.score(lenet, torch.rand(5, 1, 28, 28) * 2 - 1)
    s56 = quality.score(lenet, torch.rand(5, 1, 56, 56) * 2 - 1)
    for s in (s28, s56):
        assert 0 <= s["confident_share"] <= 1 and 0 <= s["class_entropy"] <= math.log(10) + 1e-9
        assert sum(s["histogram"]) == 5
    # one class only: entropy 0; ten equally frequent classes: ln 10
    fixed = lambda logits: (lambda x: logits[: x.shape[0]])  # noqa: E731
    assert quality.score(fixed(torch.eye(10)[[3] * 4] * 50), torch.zeros(4, 1, 28, 28))["class_entropy"] == 0
    s = quality.score(fixed(torch.eye(10) * 50), torch.zeros(10, 1, 28, 28))
    assert abs(s["class_entropy"] - math.log(10)) < 1e-9 and s["confident_share"] == 1

    # tiny "MNIST" so the in-repo training runs in a second; the cache is then reused
    gen = torch.Generator().manual_seed(0)
    fake = (torch.rand(300, 1, 28, 28, generator=gen) * 2 - 1, torch.randint(0, 10, (300,), generator=gen))
    monkeypatch.setattr(quality, "_mnist", lambda split: fake)
    model = quality.load_lenet(str(tmp_path), log=lambda *_: None)
    assert os.path.isfile(features.weights_path("mnist", str(tmp_path)))  # the cache `infdiff eval` shares
    monkeypatch.setattr(quality, "train_lenet", lambda **_: pytest.fail("cached weights were not reused"))
    again = quality.load_lenet(str(tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
