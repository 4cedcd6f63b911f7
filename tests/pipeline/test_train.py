import os

import pytest
import torch

from infdiff.checkpoint import CheckpointError, load_checkpoint
from infdiff.images import save_grid
from infdiff.sample import Sampler
from infdiff.train import Trainer, ema_decay_at, ema_update


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_checkpoint_round_trip_and_bit_identical_resume(tiny_cfg, tmp_path):
    straight = Trainer(tiny_cfg, quiet=True)
    straight.fit(stop_at=8)
    ref_model, ref_ema = _params(straight.model), _params(straight.ema)

    first = Trainer(tiny_cfg, quiet=True)
    first.fit(stop_at=4)
    ckpt = first.ckpt_path
    state = load_checkpoint(ckpt)
    assert state["step"] == 4
    resumed = Trainer(tiny_cfg, resume=ckpt, quiet=True)
    assert resumed.step == 4 and torch.equal(_params(resumed.model), _params(first.model))
    resumed.fit(stop_at=8)
    assert torch.equal(_params(resumed.model), ref_model)
    assert torch.equal(_params(resumed.ema), ref_ema)
    assert os.path.exists(os.path.join(tiny_cfg.train.out_dir, "metrics.csv"))


def test_corrupt_and_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(str(bad))
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an infdiff checkpoint"):
        load_checkpoint(str(tmp_path / "other.pt"))


def test_sample_from_checkpoint_any_resolution(tiny_cfg, tmp_path):
    trainer = Trainer(tiny_cfg, quiet=True)
    trainer.fit(stop_at=2)
    sampler = Sampler.from_checkpoint(trainer.ckpt_path, "cpu")
    for res in (16, 32):
        x = sampler.sample(3, res, steps=2, generator=sampler.generator(0))
        assert x.shape == (3, 1, res, res) and torch.isfinite(x).all()
    path = save_grid(x, str(tmp_path / "grid.png"))
    from PIL import Image

    assert Image.open(path).size == (2 * 33 + 1, 2 * 33 + 1)


def test_metrics_file_left_empty_by_a_kill_gets_its_header(tiny_cfg):
    """A run killed between creating metrics.csv and its first write leaves an empty file; the
    next run must still write the header (readers key the rows by it)."""
    import csv

    os.makedirs(tiny_cfg.train.out_dir, exist_ok=True)
    path = os.path.join(tiny_cfg.train.out_dir, "metrics.csv")
    open(path, "w").close()
    Trainer(tiny_cfg, quiet=True).fit(stop_at=5)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [5]


def test_cosine_schedule_and_warmup_follow_the_step(tiny_cfg):
    from dataclasses import replace

    from infdiff.train import scheduled_lr

    t = replace(tiny_cfg.train, lr=1e-3, steps=100, lr_schedule="cosine", warmup_steps=0)
    assert scheduled_lr(t, 0) == pytest.approx(1e-3)
    assert scheduled_lr(t, 50) == pytest.approx(5e-4)
    assert scheduled_lr(t, 100) == pytest.approx(0.0, abs=1e-15)
    assert scheduled_lr(t, 150) == pytest.approx(0.0, abs=1e-15)  # a budget past steps stays at 0
    warm = replace(t, lr_schedule="constant", warmup_steps=4)
    assert [scheduled_lr(warm, s) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_cosine_budget_anneals_by_the_step_or_the_clock_whichever_is_further(tiny_cfg):
    from dataclasses import replace

    from infdiff.train import scheduled_lr

    t = replace(tiny_cfg.train, lr=1e-3, steps=100, max_minutes=10.0, lr_schedule="cosine_budget", warmup_steps=0)
    assert scheduled_lr(t, 50, elapsed=0.0) == pytest.approx(5e-4)  # the steps lead: plain cosine
    assert scheduled_lr(t, 10, elapsed=300.0) == pytest.approx(5e-4)  # half the 600 s budget spent
    assert scheduled_lr(t, 10, elapsed=600.0) == pytest.approx(0.0, abs=1e-15)  # budget over: annealed
    assert scheduled_lr(t, 10, elapsed=900.0) == pytest.approx(0.0, abs=1e-15)
    no_budget = replace(t, max_minutes=0.0)  # no time budget: the cosine of the steps
    assert scheduled_lr(no_budget, 50, elapsed=1e6) == pytest.approx(5e-4)
    assert scheduled_lr(replace(t, lr_schedule="cosine"), 10, elapsed=600.0) > 9e-4  # cosine ignores the clock


def test_the_trainer_anneals_cosine_budget_by_the_time_already_spent(tiny_cfg, tmp_path):
    from dataclasses import replace

    from infdiff.train import scheduled_lr

    # step 0 of 10^6, but 99 % of a 10-minute budget already spent (as a resumed or slow run would
    # be): the step must take the clock's nearly annealed lr, not the step count's nearly full one
    cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, steps=10**6, max_minutes=10.0, lr_schedule="cosine_budget",
                                          ckpt_every=0, out_dir=str(tmp_path)))
    trainer = Trainer(cfg, quiet=True)
    trainer.elapsed = 0.99 * 600
    d = cfg.data
    trainer.train_step(torch.rand(cfg.train.batch_size, d.channels, d.resolution, d.resolution) * 2 - 1)
    used = trainer.opt.param_groups[0]["lr"]
    assert used == pytest.approx(scheduled_lr(cfg.train, 0, 0.99 * 600))
    assert used < 1e-3 * cfg.train.lr


def test_trainer_sets_the_scheduled_lr_and_a_resume_continues_the_curve(tiny_cfg):
    from dataclasses import replace

    from infdiff.train import scheduled_lr

    cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, steps=6, lr_schedule="cosine"))
    straight = Trainer(cfg, quiet=True)
    straight.fit(stop_at=6)
    first = Trainer(cfg, quiet=True)
    first.fit(stop_at=3)
    # the step just taken (index 2) used the curve's value there, not train.lr
    assert first.opt.param_groups[0]["lr"] == pytest.approx(scheduled_lr(cfg.train, 2))
    assert scheduled_lr(cfg.train, 2) < cfg.train.lr
    resumed = Trainer(cfg, resume=first.ckpt_path, quiet=True)
    resumed.fit(stop_at=6)
    assert torch.equal(_params(resumed.model), _params(straight.model))


def test_lr_schedule_errors_name_the_field():
    from infdiff.config import ConfigError, load_config

    from .conftest import TINY

    with pytest.raises(ConfigError, match="train.lr_schedule"):
        load_config(TINY, {"train.lr_schedule": "linear"})
    with pytest.raises(ConfigError, match="train.warmup_steps"):
        load_config(TINY, {"train.warmup_steps": -1})


def test_the_ema_forgets_the_initial_weights():
    """After 100 steps of a model held at fixed weights, the EMA equals them: a fixed decay of
    0.995 would still hold 0.995^100 = 61 % of the random initialisation it was copied from."""
    torch.manual_seed(0)
    ema, model = torch.nn.Linear(4, 4).requires_grad_(False), torch.nn.Linear(4, 4)
    for step in range(100):
        ema_update(ema, model, ema_decay_at(0.995, step))
    assert torch.allclose(_params(ema), _params(model), rtol=0, atol=1e-6)  # float32 rounding of 100 lerps
    # the warm-up ends at the configured decay and never exceeds it
    assert ema_decay_at(0.995, 10_000) == 0.995 and all(ema_decay_at(0.995, s) <= 0.995 for s in range(3000))
    assert ema_decay_at(0.9, 0) == 0.1  # step 0 keeps a tenth of the initial weights
