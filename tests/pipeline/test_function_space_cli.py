"""The function-space family (model.family fno) through the pipeline: config validation, the
CLI's train / resume / sample / eval on a tiny FNO config, and the refusals that keep the two
families' settings apart."""
import json
import os

import numpy as np
import pytest
import torch

from infdiff.checkpoint import load_checkpoint, save_checkpoint
from infdiff.cli import main
from infdiff.config import ConfigError, load_config
from infdiff.data import build_dataset
from infdiff.family import sample_defaults
from infdiff.model import FourierNeuralOperator, build_model
from infdiff.model.fno import fourier_resample
from infdiff.sample import Sampler
from infdiff.train import Trainer

from .conftest import TINY

# tiny.yaml turned into the fno family: a few-thousand-parameter operator, whole 16 px grids
TINY_FNO = {"model.family": "fno", "model.fno.width": 8, "model.fno.modes": 4, "model.fno.depth": 1,
            "model.fno.time_dim": 16, "train.coord_fraction": 1.0, "function_space.sample_steps": 3}


def _sets(overrides):
    """--set arguments of an override mapping."""
    return [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]


def _params(module):
    """All parameters of `module` flattened into one (N,) tensor."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


@pytest.fixture
def fno_cfg(tmp_path):
    return load_config(TINY, {**TINY_FNO, "train.out_dir": str(tmp_path / "run")})


def test_family_builds_the_operator_and_its_process(fno_cfg):
    model = build_model(fno_cfg)
    assert isinstance(model, FourierNeuralOperator) and model.modes == 4 and model.grid == 8  # grid 0 = 2 * modes
    assert sample_defaults(fno_cfg) == (3, "sde")
    trainer = Trainer(fno_cfg, quiet=True)
    # noise scaled to unit pixel variance at the training resolution
    assert trainer.diffusion.reference_resolution == 16 and trainer.diffusion.noise_kind == "trace_class"


def test_cli_train_resume_sample_end_to_end(tmp_path, capsys):
    run = str(tmp_path / "run")
    base = ["train", "--config", TINY, *_sets(TINY_FNO), "--set", f"train.out_dir={run}"]
    assert main(base + ["--set", "train.steps=3"]) == 0
    ckpt = os.path.join(run, "checkpoint.pt")
    assert main(base + ["--resume", ckpt, "--set", "train.steps=6"]) == 0
    out = str(tmp_path / "npz")
    argv = ["sample", "--ckpt", ckpt, "--resolution", "16", "32", "--n", "2", "--out", out, "--format", "npz"]
    assert main(argv) == 0
    with np.load(os.path.join(out, "samples.npz")) as arrays:
        assert arrays["samples_16px"].shape == (2, 1, 16, 16) and arrays["samples_32px"].shape == (2, 1, 32, 32)
        assert np.isfinite(arrays["samples_16px"]).all() and np.isfinite(arrays["samples_32px"]).all()
        first = arrays["samples_32px"].copy()
    assert main(argv) == 0  # same seed, same samples
    with np.load(os.path.join(out, "samples.npz")) as arrays:
        assert np.array_equal(arrays["samples_32px"], first)
    for sampler in ("ode", "langevin"):
        assert main(["sample", "--ckpt", ckpt, "--resolution", "16", "--n", "1", "--steps", "2", "--sampler", sampler,
                     "--out", str(tmp_path / sampler)]) == 0
    assert main(["sample", "--ckpt", ckpt, "--resolution", "16", "--n", "1", "--sampler", "ddim", "--out", out]) == 2
    assert "'ddim' is not a sampler of model.family fno" in capsys.readouterr().err
    # the function-space sampling settings may change after training; the process may not
    assert main(["sample", "--ckpt", ckpt, "--resolution", "16", "--n", "1", "--out", out,
                 "--set", "function_space.sampler=ode", "--set", "function_space.sample_steps=2"]) == 0
    assert main(["sample", "--ckpt", ckpt, "--resolution", "16", "--n", "1", "--out", out,
                 "--set", "function_space.alpha=3.0"]) == 2
    assert "--set function_space.alpha: only sampling settings" in capsys.readouterr().err


def test_cli_eval_on_an_fno_checkpoint(fno_cfg, tmp_path):
    trainer = Trainer(fno_cfg, quiet=True)
    trainer.fit(stop_at=2)
    evaluated = str(tmp_path / "eval")
    argv = ["eval", "--ckpt", trainer.ckpt_path, "--resolution", "16", "32", "--n", "4", "--steps", "2", "--out", evaluated]
    assert main(argv) == 0
    with open(os.path.join(evaluated, "eval.json")) as fh:
        report = json.load(fh)
    assert report["n"] == {"16": 4, "32": 4}
    assert report["family"] == "fno" and report["noise"] == "trace_class" and "wiener_nsr" not in report
    with open(os.path.join(evaluated, "report.md")) as fh:
        assert "- model family: `fno`" in fh.read()
    for res in ("16", "32"):
        assert np.isfinite(report["native"][res]["swd"]) and report["native"][res]["law_spectrum_err"] > 0


def test_resume_is_bit_identical(fno_cfg):
    straight = Trainer(fno_cfg, quiet=True)
    straight.fit(stop_at=4)
    reference = _params(straight.model), _params(straight.ema)
    first = Trainer(fno_cfg, quiet=True)
    first.fit(stop_at=2)
    resumed = Trainer(fno_cfg, resume=first.ckpt_path, quiet=True)
    resumed.fit(stop_at=4)
    assert torch.equal(_params(resumed.model), reference[0]) and torch.equal(_params(resumed.ema), reference[1])


def test_resume_refuses_the_other_family(fno_cfg, tmp_path):
    trainer = Trainer(fno_cfg, quiet=True)
    trainer.fit(stop_at=1)
    mollified = load_config(TINY, {"train.out_dir": str(tmp_path / "other")})
    with pytest.raises(ValueError, match="model.family: checkpoint 'fno', this config 'mollified'"):
        Trainer(mollified, resume=trainer.ckpt_path, quiet=True)


def test_a_checkpoint_from_before_the_family_fields_still_resumes_and_samples(tmp_path):
    cfg = load_config(TINY, {"train.out_dir": str(tmp_path / "run")})
    trainer = Trainer(cfg, quiet=True)
    trainer.fit(stop_at=1)
    state = load_checkpoint(trainer.ckpt_path)
    del state["config"]["function_space"], state["config"]["model"]["family"], state["config"]["model"]["fno"]
    save_checkpoint(state, trainer.ckpt_path)
    resumed = Trainer(cfg, resume=trainer.ckpt_path, quiet=True)
    assert resumed.step == 1 and torch.equal(_params(resumed.model), _params(trainer.model))
    sampler = Sampler.from_checkpoint(trainer.ckpt_path, "cpu")
    assert sampler.cfg.model.family == "mollified"
    assert sampler.sample(1, 16, steps=1, generator=sampler.generator(0)).shape == (1, 1, 16, 16)


def test_inpainting_says_it_is_mollified_only(fno_cfg):
    model = build_model(fno_cfg).eval()
    trainer = Trainer(fno_cfg, quiet=True)
    sampler = Sampler(model, trainer.diffusion, fno_cfg)
    images = torch.zeros(1, 1, 16, 16)
    with pytest.raises(ValueError, match="inpaint: guided sampling is built for model.family mollified only"):
        sampler.inpaint(images, torch.ones(1, 1, 16, 16))


@pytest.mark.parametrize("sampler_name", ["sde", "ode", "langevin"])
def test_superres_keeps_the_input_band_and_is_deterministic(fno_cfg, sampler_name):
    torch.manual_seed(0)
    model = build_model(fno_cfg).eval()
    process = Trainer(fno_cfg, quiet=True).diffusion
    low = 0.5 * torch.tanh(torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)))

    def run(seed):
        return process.superres(model, low, 40, steps=3, sampler=sampler_name, generator=torch.Generator().manual_seed(seed))

    a, b, c = run(5), run(5), run(6)
    assert a.shape == (2, 1, 40, 40) and torch.equal(a, b) and (a - c).abs().max() > 1e-4
    # its modes below the input's Nyquist frequency are the input's; the finer ones were sampled
    torch.testing.assert_close(fourier_resample(a, (16, 16)), fourier_resample(low, (16, 16)), rtol=0, atol=1e-5)
    assert (fourier_resample(a, (40, 40)) - fourier_resample(fourier_resample(a, (16, 16)), (40, 40))).abs().max() > 1e-4
    with pytest.raises(ValueError, match="resolution must be an int above the input's 16 px"):
        process.superres(model, low, 16)


def test_cli_superres_on_an_fno_checkpoint(fno_cfg, tmp_path, capsys):
    trainer = Trainer(fno_cfg, quiet=True)
    trainer.fit(stop_at=1)
    ckpt, out = trainer.ckpt_path, str(tmp_path / "sr")
    base = ["superres", "--ckpt", ckpt, "--resolution", "32", "--n", "2", "--steps", "2", "--out", out]
    assert main(base) == 0
    assert "superres_band_32px.png" in os.listdir(out)
    assert "rms difference between the output downsampled to 16 px and the input (band)" in capsys.readouterr().out
    assert main(base + ["--method", "sdedit"]) == 2
    assert "--method sdedit: model.family fno checkpoints take --method band" in capsys.readouterr().err
    assert main(base + ["--guidance", "2"]) == 2
    assert "--guidance and --start are for the mollified family" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, message", [
    ("model.family", "unet", "must be one of ('mollified', 'fno')"),
    ("train.coord_fraction", 0.5, "the operator sees whole grids"),
    ("train.precision", "bf16", "torch.fft has no bf16 path"),
    ("model.fno.width", 0, "must be >= 1"),
    ("model.fno.modes", 0, "must be >= 1"),
    ("model.fno.depth", 0, "must be >= 1"),
    ("model.fno.grid", 6, "so that it holds every mode"),
    ("model.fno.time_dim", 15, "must be even"),
    ("model.fno.colour", 1, "unknown key"),
    ("function_space.noise", "pink", "must be one of ('trace_class', 'white')"),
    ("function_space.alpha", 1.0, "trace class"),
    ("function_space.tau", 0.0, "must be > 0"),
    ("function_space.beta_min", -1.0, "must be > 0"),
    ("function_space.beta_max", 0.05, "must be >= function_space.beta_min"),
    ("function_space.sampler", "ddim", "must be one of ('sde', 'ode', 'langevin')"),
    ("function_space.sample_steps", 0, "must be >= 1"),
])
def test_config_errors_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=rf"`{field}`") as err:
        load_config(TINY, {**TINY_FNO, field: value})
    assert message in str(err.value)


@pytest.mark.parametrize("preset", ["fno_grf", "fno_mnist", "fno_cahn_hilliard"])
def test_presets_load_as_the_fno_family(preset):
    cfg = load_config(preset)
    assert cfg.model.family == "fno" and cfg.train.coord_fraction == 1.0
    assert cfg.function_space.noise == "trace_class"


def test_a_short_run_samples_the_data_pixel_std_with_its_ema(tmp_path):
    """The EMA of a short run must not keep the random initial weights: at ema_decay 0.995 and 300
    steps a plain EMA still holds 22 % of them, and its samples had a pixel std hundreds of times
    the data's (the fno_grf preset cut to 386 steps: 2x by Euler-Maruyama, 11x by the ODE)."""
    cfg = load_config(TINY, {**TINY_FNO, "model.fno.width": 16, "model.fno.modes": 6, "train.steps": 300,
                             "train.ema_decay": 0.995, "train.batch_size": 16, "train.lr": 0.003, "train.ckpt_every": 0,
                             "data.grf_size": 256, "train.adapt_threads": False, "train.out_dir": str(tmp_path / "run")})
    trainer = Trainer(cfg, quiet=True)
    trainer.fit()
    dataset = build_dataset(cfg.data)
    data_std = float(torch.stack([dataset[i] for i in range(len(dataset))]).std())
    sampler = trainer.sampler()
    for resolution in (16, 32):  # the training grid and twice it
        for name, steps in (("sde", 50), ("ode", 25)):
            x = sampler.sample(64, resolution, steps=steps, sampler=name, generator=sampler.generator(0))
            # measured 0.24-0.27 against the data's 0.25 (64 samples: the spread of the estimate is ~ 5 %)
            assert abs(float(x.std()) / data_std - 1) < 0.25, (resolution, name, float(x.std()), data_std)
