"""The diffusion-autoencoder mode (docs/autoencoder.md) on the tiny config: encoder, latent
model, stochastic encoding, the two-stage checkpoint and the commands that use them."""
import importlib.util
import os

import pytest
import torch
import torch.nn.functional as F

import infdiff_kernels as ik
from infdiff.checkpoint import load_checkpoint, save_checkpoint
from infdiff.cli import main
from infdiff.config import ConfigError, load_config
from infdiff.data import build_dataset
from infdiff.model import build_model
from infdiff.sample import Sampler
from infdiff.train import Trainer, train

from .conftest import TINY

AE = {"model.autoencoder.enabled": True, "model.autoencoder.latent_dim": 8, "model.autoencoder.latent_steps": 50,
      "model.autoencoder.latent_hidden": 32, "model.autoencoder.latent_layers": 2,
      "model.autoencoder.latent_batch": 16, "model.autoencoder.latent_diffusion_steps": 100,
      "model.autoencoder.latent_sample_steps": 5}
AE_SET = [arg for key, value in AE.items() for arg in ("--set", f"{key}={str(value).lower()}")]


def ae_cfg(out_dir, **more):
    return load_config(TINY, {**AE, "train.out_dir": str(out_dir), **more})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny autoencoder trained for 60 steps (~20 s on one busy core), its latent model too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = train(ae_cfg(tmp_path_factory.mktemp("ae"), **{"train.steps": 60}), quiet=True)
    finally:
        torch.set_num_threads(before)
    return trainer


def images(cfg, n):
    ds = build_dataset(cfg.data)
    return torch.stack([ds[i] for i in range(n)])


def test_encoder_output_shape_at_any_resolution_and_subset(tmp_path):
    cfg = ae_cfg(tmp_path)
    model = build_model(cfg).eval()
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    coords = ik.random_coords(3, (16, 16), count=40, generator=torch.Generator().manual_seed(0))
    assert model.encode(ik.gather_points(x, coords), coords, (16, 16)).shape == (3, 8)
    sampler = Sampler(model, None, cfg)
    for res in (16, 24, 48):
        z = sampler.encode(F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False))
        assert z.shape == (3, 8) and torch.isfinite(z).all()


def test_plain_model_is_unchanged_and_refuses_a_latent(tiny_cfg):
    model = build_model(tiny_cfg)
    assert not any(k.startswith(("semantic.", "latent.")) for k in model.state_dict())
    x = torch.zeros(1, 4, 1)
    coords = ik.random_coords(1, (16, 16), count=4)
    with pytest.raises(ValueError, match="not an autoencoder"):
        model(x, coords, (16, 16), torch.zeros(1, dtype=torch.long), z=torch.zeros(1, 8))


# the weight names before the point stage and the U-Net's down path became shared modules,
# for the tiny config (U-Net levels [1, 2], one residual block each): new prefix -> old prefix
LEGACY_NAMES = {"to_grid.lift.": "lift.", "to_grid.blocks.": "encoder.",
                "semantic.to_grid.lift.": "semantic.lift.", "semantic.to_grid.blocks.": "semantic.blocks.",
                "semantic.unet_down.inp.": "semantic.inp.",
                "semantic.unet_down.down.0.0.": "semantic.down.0.",  # level 0: residual block, attention
                "semantic.unet_down.down.0.1.": "semantic.down.1.",
                "semantic.unet_down.down.1.0.": "semantic.down.2.",  # the strided convolution
                "semantic.unet_down.down.2.0.": "semantic.down.3.",  # level 1: residual block, attention
                "semantic.unet_down.down.2.1.": "semantic.down.4.",
                "semantic.mid.": "semantic.down.5."}


def test_checkpoints_with_the_old_weight_names_load(tmp_path):
    cfg = ae_cfg(tmp_path)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for p in model.parameters():  # no zero-initialised layers: every weight shows in the output
        p.data.normal_(0, 0.1)

    def old_name(key):
        new = next((n for n in LEGACY_NAMES if key.startswith(n)), None)
        return key if new is None else LEGACY_NAMES[new] + key[len(new):]

    old = {old_name(k): v for k, v in model.state_dict().items()}
    assert "semantic.down.5.conv1.weight" in old and "encoder.0.weight" in old
    loaded = build_model(cfg).eval()
    loaded.load_state_dict(old)  # strict: every old name found its new place
    x = torch.rand(2, 256, 1) * 2 - 1
    coords = ik.grid_coords((16, 16), 2)
    t = torch.tensor([10, 50])
    with torch.no_grad():
        z = model.encode(x, coords, (16, 16))
        assert torch.equal(loaded.encode(x, coords, (16, 16)), z)
        assert torch.equal(loaded(x, coords, (16, 16), t, z=z), model(x, coords, (16, 16), t, z=z))


def test_latent_of_an_image_and_of_its_2x_upsample_agree(trained):
    """Tolerance: the encoder sees the image through the k-NN lerp onto its fixed grid with
    kernels resampled by the scale, so a 2x bicubic upsample (not the same function: bicubic
    overshoots a little) must land much nearer its own image's latent than the latents of
    different images lie apart -- on average within a tenth of that spread, and nearer its
    own image than any other (measured after 100 steps: 0.03 of the spread on average)."""
    sampler = trained.sampler()
    x = images(trained.cfg, 8)
    up = F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False).clamp(-1, 1)
    z, zu = sampler.encode(x), sampler.encode(up)
    between = torch.cdist(z, z)
    same = (z - zu).norm(dim=1)
    spread = between[~torch.eye(8, dtype=torch.bool)].mean()
    assert same.mean() < 0.1 * spread
    assert torch.equal(torch.cdist(zu, z).argmin(1), torch.arange(8))


class _ConstantEps(torch.nn.Module):
    """A stand-in model whose noise estimate depends only on t: DDIM inversion is then exact."""

    def forward(self, x, coords, size, t, scale=1.0, z=None):
        return torch.sin(t.float() / 7)[:, None, None].expand_as(x) * 0.3


def test_ddim_inversion_is_the_inverse_of_ddim(tiny_cfg, trained):
    from infdiff.family import build_diffusion

    d = build_diffusion(tiny_cfg)
    x = images(tiny_cfg, 2)
    for steps in (5, 100):
        xt = d.invert(_ConstantEps(), x, steps=steps)
        _, tx0 = d.sample(_ConstantEps(), tuple(x.shape), steps=steps, x_init=xt, start_t=d.encoding_time(), clip=False)
        assert torch.allclose(tx0, d.mollify(x), atol=1e-4)
    # with the trained network the noise estimate moves along the path: the round trip is
    # only approximate, and improves with the number of steps
    sampler = trained.sampler()
    z = sampler.encode(x)
    errors = [(sampler.decode(sampler.invert(x, z, s), z, s) - x).pow(2).mean().sqrt().item() for s in (10, 100)]
    assert errors[1] < errors[0] and errors[1] < 0.2 * x.pow(2).mean().sqrt().item() + 0.05


def test_latent_sampler_is_deterministic(trained):
    sampler = trained.sampler()
    a = sampler.sample_latents(4, generator=torch.Generator().manual_seed(3))
    b = sampler.sample_latents(4, generator=torch.Generator().manual_seed(3))
    c = sampler.sample_latents(4, generator=torch.Generator().manual_seed(4))
    assert a.shape == (4, 8) and torch.equal(a, b) and not torch.equal(a, c)
    x = sampler.sample(2, 32, steps=3, generator=torch.Generator().manual_seed(1))
    y = sampler.sample(2, 32, steps=3, generator=torch.Generator().manual_seed(1))
    assert x.shape == (2, 1, 32, 32) and torch.equal(x, y)


def test_interpolation_ends_at_the_reconstructions(trained):
    sampler = trained.sampler()
    x = images(trained.cfg, 2)
    out = sampler.interpolate(x[:1], x[1:], [0.0, 0.5, 1.0], steps=5)
    assert out.shape == (3, 1, 16, 16)
    for end, img in ((out[0], x[0]), (out[2], x[1])):
        rec = sampler.decode(sampler.invert(img[None], steps=5), sampler.encode(img[None]), steps=5)
        assert torch.allclose(end, rec[0], atol=1e-3)  # batched vs alone: float rounding, then the Wiener gain


def test_two_stage_checkpoint_round_trip(trained, tmp_path):
    state = load_checkpoint(trained.ckpt_path)  # weights_only: the latent model is plain tensors too
    assert set(state["latent"]) == set(state["latent_ema"]) == set(trained.latent.state_dict())
    loaded = Sampler.from_checkpoint(trained.ckpt_path, "cpu")
    for k, v in trained.latent_ema.state_dict().items():  # the EMA samples
        assert torch.equal(loaded.latent.state_dict()[k], v)
    here = trained.sampler()
    assert torch.equal(loaded.sample(2, 16, steps=3, generator=torch.Generator().manual_seed(0)),
                       here.sample(2, 16, steps=3, generator=torch.Generator().manual_seed(0)))
    # a checkpoint written before the latent model had an EMA samples with its weights
    del state["latent_ema"]
    save_checkpoint({k: v for k, v in state.items() if k != "format"}, str(tmp_path / "old.pt"))
    old = Sampler.from_checkpoint(str(tmp_path / "old.pt"), "cpu")
    assert all(torch.equal(old.latent.state_dict()[k], v) for k, v in trained.latent.state_dict().items())


def test_latent_ema_follows_the_latent_weights(tmp_path):
    """One step of the latent model from the same start: the EMA is start + (1 - decay) * (step's weights - start)."""
    from infdiff.autoencoder import build_latent, train_latent

    cfg = ae_cfg(tmp_path, **{"model.autoencoder.latent_steps": 1, "model.autoencoder.latent_ema_decay": 0.9})
    model, ds = build_model(cfg).eval(), build_dataset(cfg.data)
    torch.manual_seed(5)
    start = build_latent(cfg).state_dict()
    torch.manual_seed(5)
    latent, ema = train_latent(cfg, model, ds, torch.device("cpu"), torch.Generator().manual_seed(0))
    moved = [k for k, v in latent.state_dict().items() if not torch.equal(v, start[k]) and k not in ("z_mean", "z_std")]
    assert moved  # the step changed weights, so the check below has something to check
    for k, v in ema.state_dict().items():
        expected = latent.state_dict()[k] if k in ("z_mean", "z_std") else torch.lerp(start[k], latent.state_dict()[k], 0.1)
        assert torch.allclose(v, expected, atol=1e-7), k


def test_resume_is_bit_identical_with_the_latent_stage(tmp_path):
    # the latent stage runs at the end of every fit: it must not move the streams a resume continues
    cfg = ae_cfg(tmp_path / "a", **{"train.steps": 6})
    straight = Trainer(cfg, quiet=True)
    straight.fit()
    first = Trainer(ae_cfg(tmp_path / "b", **{"train.steps": 3}), quiet=True)
    first.fit()
    resumed = Trainer(ae_cfg(tmp_path / "b", **{"train.steps": 6}), resume=first.ckpt_path, quiet=True)
    resumed.fit()
    for a, b in ((straight.model, resumed.model), (straight.latent, resumed.latent), (straight.latent_ema, resumed.latent_ema)):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_config_errors_name_the_field(tmp_path):
    for key, value in (("model.autoencoder.latent_dim", 0), ("model.autoencoder.encoder_fraction", 0.0),
                       ("model.autoencoder.latent_sample_steps", 1000), ("model.autoencoder.latent_steps", -1),
                       ("model.autoencoder.latent_ema_decay", 1.0)):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            ae_cfg(tmp_path, **{key: value})
    with pytest.raises(ConfigError, match=r"model\.autoencoder\.enabled.*mollified"):
        load_config(os.path.join(os.path.dirname(TINY), "fno_grf.yaml"), {"model.autoencoder.enabled": True})
    with pytest.raises(ConfigError, match=r"model\.autoencoder\.latnet_dim"):
        load_config(TINY, {"model.autoencoder.latnet_dim": 4})


@pytest.mark.skipif(importlib.util.find_spec("mdsdata") is None, reason="mdsdata not installed (pip install --no-deps mdsdata)")
def test_cahn_hilliard_preset_trains(tmp_path):
    """The cahn_hilliard_ae preset's network, data and both stages, for two steps of two images."""
    cfg = load_config("cahn_hilliard_ae", {"train.out_dir": str(tmp_path), "train.steps": 2, "train.batch_size": 2,
                                           "train.max_minutes": 0, "data.limit": 4, "model.autoencoder.latent_steps": 2,
                                           "model.autoencoder.latent_examples": 2, "model.autoencoder.latent_batch": 2})
    trainer = train(cfg, quiet=True)
    assert trainer.step == 2
    z = trainer.sampler().sample_latents(2, steps=2, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2, 64) and torch.isfinite(z).all()


def test_cli_end_to_end(tmp_path, trained, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--config", TINY, "--set", f"train.out_dir={run}", "--set", "train.steps=3"] + AE_SET) == 0
    assert os.path.exists(os.path.join(run, "checkpoint.pt"))
    ckpt = trained.ckpt_path
    out = str(tmp_path / "out")
    assert main(["sample", "--ckpt", ckpt, "--resolution", "16", "32", "--steps", "2", "--n", "2", "--out", out]) == 0
    assert main(["superres", "--ckpt", ckpt, "--method", "encode", "--resolution", "32", "--n", "2", "--steps", "2",
                 "--out", out]) == 0
    assert "rms difference between the output downsampled to 16 px and the input (encode)" in capsys.readouterr().out
    # today's method on the same checkpoint, its decoder conditioned on the input's latent
    assert main(["superres", "--ckpt", ckpt, "--resolution", "32", "--n", "1", "--steps", "2", "--out", out]) == 0
    assert "input (sdedit)" in capsys.readouterr().out
    assert main(["inpaint", "--ckpt", ckpt, "--start-t", "60", "--n", "2", "--steps", "3", "--out", out]) == 0
    assert {"samples_16px.png", "samples_32px.png", "superres_encode_32px.png", "inpainted.png"} <= set(os.listdir(out))
    assert main(["inpaint", "--ckpt", ckpt, "--start-t", "100", "--n", "1", "--steps", "2", "--out", out]) == 2
    assert "--start-t must be an int in [0, diffusion.steps)" in capsys.readouterr().err


def test_report_script_end_to_end(tmp_path, trained):
    """scripts/autoencoder_report.py on the tiny autoencoder and a tiny plain model (GRF data: no
    feature CNN, so FD, confidence and entropy are '-' and the patch SWD stands in)."""
    import importlib.util
    import json

    from .conftest import ROOT

    spec = importlib.util.spec_from_file_location("autoencoder_report", os.path.join(ROOT, "scripts", "autoencoder_report.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    plain = train(load_config(TINY, {"train.out_dir": str(tmp_path / "plain"), "train.steps": 2}), quiet=True)
    out = tmp_path / "report"
    script.main(["--ae", trained.ckpt_path, "--plain", plain.ckpt_path, "--out", str(out), "--eval-n", "4",
                 "--eval-steps", "2", "--n", "3", "--steps", "2", "--superres", "2", "4"])
    report = json.loads((out / "report.json").read_text())
    assert set(report["evaluation"]) == {"autoencoder", "plain"}
    assert set(report["evaluation"]["plain"]) == {"16", "32", "64"}  # 1x, 2x, 4x
    assert report["training"]["plain"]["steps"] == 2 and report["training"]["autoencoder"]["steps"] == 60
    assert set(report["reconstruction"]) == {"16", "32"} and set(report["superres"]) == {"32", "64"}
    assert set(report["superres"]["64"]) == {"autoencoder, encode", "autoencoder, sdedit", "plain, sdedit"}
    figures = [report["evaluation"][m][r]["swd"] for m in report["evaluation"] for r in ("16", "32", "64")]
    figures += list(report["reconstruction"].values()) + [v for r in report["superres"].values() for v in r.values()]
    assert all(isinstance(v, float) and v >= 0 and v == v for v in figures)
    pictures = {"reconstruction_16px.png", "reconstruction_32px.png", "superres_16_to_32px.png", "superres_16_to_64px.png"}
    assert pictures <= set(os.listdir(out)) and (out / "eval_plain" / "samples_64px.png").exists()
    md = (out / "report.md").read_text()
    assert "| autoencoder | 32 px | - | - | - |" in md and all(f"({name})" in md for name in pictures)


def test_plain_checkpoints_refuse_the_autoencoder_commands(tmp_path, capsys):
    run = str(tmp_path / "plain")
    assert main(["train", "--config", TINY, "--set", f"train.out_dir={run}", "--set", "train.steps=2"]) == 0
    ckpt = os.path.join(run, "checkpoint.pt")
    capsys.readouterr()
    assert main(["superres", "--ckpt", ckpt, "--method", "encode", "--resolution", "32", "--n", "1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "superres --method encode: needs a diffusion-autoencoder checkpoint" in capsys.readouterr().err
    assert main(["inpaint", "--ckpt", ckpt, "--start-t", "50", "--n", "1", "--out", str(tmp_path / "o")]) == 2
    assert "inpaint --start-t: needs a diffusion-autoencoder checkpoint" in capsys.readouterr().err
