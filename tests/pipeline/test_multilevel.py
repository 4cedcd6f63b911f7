"""Multilevel training (python/infdiff/multilevel.py, train.levels): the Fourier truncation of
the data per level, the order of the levels under each schedule, the data streams' positions
on resume, the cost per level, config errors naming the field, and a tiny run through the CLI;
for the mollified family, finer levels drawn from the same GRF law and trained on with the
kernels resampled."""
import json
import os

import pytest
import torch

from infdiff.cli import main
from infdiff.config import ConfigError, load_config
from infdiff.data.datasets import GaussianRandomFields, build_dataset
from infdiff.model.fno import evaluate_band, fourier_resample
from infdiff.multilevel import coord_fraction_at, level_of_step, levels_of, steps_at_level_before
from infdiff.train import Trainer

from .conftest import TINY
from .test_function_space_cli import TINY_FNO, _params, _sets

LEVELS = {"train.levels": [8, 16], "train.level_batch_sizes": [8, 4]}


def _cfg(tmp_path, **overrides):
    return load_config(TINY, {**TINY_FNO, "train.out_dir": str(tmp_path / "run"), **overrides})


def test_fourier_resample_is_truncation_down_and_interpolation_up():
    gen = torch.Generator().manual_seed(0)
    # a field with modes |kx|, ky <= 3: every grid from 8 px resolves them below Nyquist
    coeff = torch.complex(torch.randn(2, 1, 7, 4, generator=gen, dtype=torch.float64),
                          torch.randn(2, 1, 7, 4, generator=gen, dtype=torch.float64))
    coeff[..., 0, 0] = coeff[..., 0, 0].real  # the mean of a real field is real
    coeff[..., 4:, 0] = coeff[..., 1:4, 0].flip(-1).conj()  # the ky = 0 column of a real field is Hermitian
    fine, coarse = evaluate_band(coeff, (32, 32)), evaluate_band(coeff, (8, 8))
    torch.testing.assert_close(fourier_resample(fine, (8, 8)), coarse, rtol=0, atol=1e-12)
    torch.testing.assert_close(fourier_resample(coarse, (32, 32)), fine, rtol=0, atol=1e-12)
    # above the coarse grid's band a field is cut: 4 px keeps |k| <= 1 only
    torch.testing.assert_close(fourier_resample(fine, (4, 4)), fourier_resample(coarse, (4, 4)), rtol=0, atol=1e-12)
    assert fourier_resample(fine, (4, 4)).shape == (2, 1, 4, 4)


@pytest.mark.parametrize("schedule", ["mixed", "coarse_to_fine"])
def test_schedule_order_and_stream_positions(tmp_path, schedule):
    cfg = _cfg(tmp_path, **{"train.levels": [4, 8, 16], "train.level_schedule": schedule, "train.steps": 10})
    t = cfg.train
    order = [level_of_step(t, 3, s) for s in range(14)]
    if schedule == "mixed":
        assert order == [0, 1, 2] * 4 + [0, 1]
    else:  # ceil(10 / 3) = 4 steps per phase, coarsest first; past train.steps the finest
        assert order == [0] * 4 + [1] * 3 + [2] * 7
    for step in range(15):  # the position of each level's stream: its steps before `step`
        for level in range(3):
            assert steps_at_level_before(t, 3, level, step) == order[:step].count(level)


def test_each_step_trains_on_its_level_with_its_batch_size(tmp_path):
    cfg = _cfg(tmp_path, **LEVELS, **{"train.steps": 6})
    assert levels_of(cfg.train, 16) == [(8, 8), (16, 4)]
    trainer = Trainer(cfg, quiet=True)
    shapes = []
    step = trainer.train_step

    def recording(x0):
        shapes.append(tuple(x0.shape))
        return step(x0)

    trainer.train_step = recording
    trainer.fit()
    assert shapes == [(8, 1, 8, 8), (4, 1, 16, 16)] * 3
    with open(os.path.join(cfg.train.out_dir, "cost.json")) as fh:
        cost = json.load(fh)
    assert cost["schedule"] == "mixed"
    assert [(row["resolution"], row["batch_size"], row["steps"]) for row in cost["levels"]] == [(8, 8, 3), (16, 4, 3)]
    assert all(row["s_per_step"] > 0 for row in cost["levels"])


def test_a_multilevel_resume_is_bit_identical(tmp_path):
    cfg = _cfg(tmp_path, **LEVELS, **{"train.level_schedule": "coarse_to_fine", "train.steps": 8})
    straight = Trainer(cfg, quiet=True)
    straight.fit()
    first = Trainer(cfg, quiet=True)
    first.fit(stop_at=3)  # stops inside the first phase
    resumed = Trainer(cfg, resume=first.ckpt_path, quiet=True)
    resumed.fit()
    assert torch.equal(_params(resumed.model), _params(straight.model))
    assert torch.equal(_params(resumed.ema), _params(straight.ema))
    assert [row["steps"] for row in resumed.cost.rows()] == [4, 4]  # the steps before the resume count


@pytest.mark.parametrize("overrides,field", [
    ({"model.family": "mollified", "train.coord_fraction": 0.25, "train.levels": [8, 16]}, "train.levels"),
    ({"train.levels": [8, 32]}, "train.levels"),  # above data.resolution
    ({"train.levels": [16, 8]}, "train.levels"),  # not coarse to fine
    ({"train.levels": [1, 16]}, "train.levels"),
    ({"train.levels": [8, 16], "train.level_batch_sizes": [4]}, "train.level_batch_sizes"),
    ({"train.levels": [8, 16], "train.level_batch_sizes": [4, 0]}, "train.level_batch_sizes"),
    ({"train.level_batch_sizes": [4]}, "train.level_batch_sizes"),
    ({"train.levels": [8, 16], "train.level_schedule": "fine_to_coarse"}, "train.level_schedule"),
    ({"train.levels": "8, 16"}, "train.levels"),
    ({"train.levels": [8, 16], "train.level_coord_fractions": [1.0, 1.0]}, "train.level_coord_fractions"),  # fno
    ({"train.level_coord_fractions": [1.0]}, "train.level_coord_fractions"),
])
def test_config_errors_name_the_field(tmp_path, overrides, field):
    with pytest.raises(ConfigError, match=f"`{field}"):
        load_config(TINY, {**TINY_FNO, "train.out_dir": str(tmp_path), **overrides})


def test_a_level_batch_larger_than_the_data_names_its_field(tmp_path):
    cfg = _cfg(tmp_path, **{"train.levels": [8, 16], "train.level_batch_sizes": [999, 4], "train.steps": 2})
    with pytest.raises(ValueError, match="train.level_batch_sizes 999 exceeds"):
        Trainer(cfg, quiet=True).fit()


def test_cli_trains_with_levels_and_samples_at_another_resolution(tmp_path, capsys):
    run = str(tmp_path / "run")
    argv = ["train", "--config", TINY, *_sets(TINY_FNO), "--set", f"train.out_dir={run}", "--set", "train.steps=4",
            "--set", "train.levels=[8, 16]", "--set", "train.level_schedule=coarse_to_fine"]
    assert main(argv) == 0
    assert "training cost per level" in capsys.readouterr().err
    assert os.path.exists(os.path.join(run, "cost.json"))
    out = str(tmp_path / "samples")
    assert main(["sample", "--ckpt", os.path.join(run, "checkpoint.pt"), "--resolution", "32", "--n", "2",
                 "--out", out]) == 0


MOLLIFIED_LEVELS = {"train.levels": [16, 32], "train.level_coord_fractions": [0.25, 0.0625]}


@pytest.mark.parametrize("overrides,field", [
    ({"train.levels": [8, 16]}, "train.levels"),  # below data.resolution: the mollifier under half a pixel
    ({"train.levels": [16, 32], "data.name": "mnist", "data.resolution": 16}, "train.levels"),  # no law to draw
    ({"train.levels": [16, 32], "model.autoencoder.enabled": True}, "train.levels"),
    ({"train.levels": [16, 32], "diffusion.noise": "pixel"}, "diffusion.noise"),  # the finer levels' noise
    ({"train.levels": [16, 32], "train.level_coord_fractions": [0.25]}, "train.level_coord_fractions"),
    ({"train.levels": [16, 32], "train.level_coord_fractions": [0.25, 0.0]}, "train.level_coord_fractions"),
    ({"train.levels": [16, 32], "train.level_coord_fractions": [0.25, 0.001]}, "train.level_coord_fractions"),  # < knn points
])
def test_mollified_config_errors_name_the_field(tmp_path, overrides, field):
    with pytest.raises(ConfigError, match=f"`{field}"):
        load_config(TINY, {"train.out_dir": str(tmp_path), **overrides})


def test_grf_drawn_at_a_finer_level_is_the_same_law():
    """A 32 px draw scaled as at 16 px: its Fourier truncation to 16 px has the 16 px draws'
    spectrum (one law of functions), and its pixel std is the law's at 32 px (not rescaled to 1/4)."""
    comps = [(2.5, 8.0)]
    coarse = GaussianRandomFields(16, 400, 0, "train", comps)
    fine = GaussianRandomFields(32, 400, 0, "train", comps, law_resolution=16)
    a = torch.stack([coarse[i] for i in range(400)]).double()
    b = torch.stack([fine[i] for i in range(400)]).double()
    power = lambda x: torch.fft.fft2(x, norm="forward").abs().square().mean(0)  # noqa: E731
    pa, pb = power(a), power(fourier_resample(b, (16, 16)))
    # 400 draws: each mode's power is a mean of 400 exponentials (relative sd 5 %); the total
    # over the 256 modes, dominated by the lowest ones, is checked within 10 %
    assert abs(float(pb.sum() / pa.sum()) - 1) < 0.1
    assert abs(float(pb[:4, :4].sum() / pa[:4, :4].sum()) - 1) < 0.1
    # the fine draw holds the modes 8..16 too: more pixel variance than the coarse one
    assert float(b.var()) > float(a.var())
    with pytest.raises(ValueError, match="data.resolution only"):
        build_dataset(load_config(TINY, {"data.name": "mnist"}).data, resolution=32)


def test_mollified_levels_train_with_their_share_and_resampled_kernels(tmp_path):
    cfg = load_config(TINY, {"train.out_dir": str(tmp_path / "run"), "train.steps": 4, **MOLLIFIED_LEVELS})
    assert [coord_fraction_at(cfg.train, r) for r in (16, 32)] == [0.25, 0.0625]
    trainer = Trainer(cfg, quiet=True)
    calls = []
    forward = trainer.model.forward

    def recording(x, coords, size, t, scale=1.0, **kw):
        calls.append((tuple(size), x.shape[1], scale))
        return forward(x, coords, size, t, scale=scale, **kw)

    trainer.model.forward = recording
    trainer.fit()
    # 16 px: 1/4 of 256 points at scale 1; 32 px: 1/16 of 1024 points, kernels resampled 2x
    assert calls == [((16, 16), 64, 1.0), ((32, 32), 64, 2.0)] * 2
    with open(os.path.join(cfg.train.out_dir, "cost.json")) as fh:
        assert [row["resolution"] for row in json.load(fh)["levels"]] == [16, 32]
