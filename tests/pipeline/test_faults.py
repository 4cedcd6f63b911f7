"""Faults and bad values never lose work (issue 12).

- SIGKILL at random points of training, during steps and during checkpoint writes (random
  instants, the instant a temp file appears, and deterministic kills halfway through
  torch.save and just before the rename), then resume: a readable checkpoint always exists,
  it never goes back, no step that was saved is lost, and the final weights equal an
  uninterrupted run's (bit-identical resume across processes).
- --resume with a checkpoint of another model or problem names every differing field.
- A NaN/Inf loss (or gradient) stops training naming the step and keeps the last good
  checkpoint; the periodic, end-of-fit and Ctrl-C saves never write broken weights; a Ctrl-C
  keeps resume bit-identical.
- inpaint / superres refuse NaN/Inf inputs before any work.
"""
import csv
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from infdiff import guided
from infdiff.masks import named_mask
from infdiff.checkpoint import load_checkpoint
from infdiff.cli import main
from infdiff.config import load_config
from infdiff.train import Trainer, TrainingDiverged

from .conftest import TINY

STEPS = 24


def _flat(state_dict):
    return torch.cat([v.detach().flatten().double() for v in state_dict.values() if torch.is_tensor(v)])


def _opt_flat(opt_state):
    return torch.cat([v.flatten().double() for s in opt_state["state"].values() for v in s.values() if torch.is_tensor(v)])


def _metric_steps(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def _metric_steps_live(path):
    """_metric_steps of a file a running child may be appending to. A read can overlap that
    write and see part of it (seen once under load: a row under a header without "step"); such
    a torn read is retried, not taken as the file's content. Reads after the child has exited
    use _metric_steps, which fails on any malformed file."""
    for _ in range(1000):
        try:
            return _metric_steps(path)
        except (KeyError, ValueError, TypeError):
            time.sleep(0.001)
    return _metric_steps(path)  # still torn after a second: let the error show


def _ckpt_step(path):
    return load_checkpoint(path)["step"] if os.path.exists(path) else None


# Code run in the child before the CLI: kill this process with SIGKILL in the middle of the
# n-th checkpoint write (half the bytes written and fsynced) or just before its rename.
_MID_WRITE = """
import io, os, signal, torch
_save, _count = torch.save, [0]
def _dying_save(obj, f, *a, **k):
    _count[0] += 1
    if _count[0] == {n}:
        buf = io.BytesIO()
        _save(obj, buf, *a, **k)
        data = buf.getvalue()
        f.write(data[: len(data) // 2]); f.flush(); os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return _save(obj, f, *a, **k)
torch.save = _dying_save
"""
_BEFORE_RENAME = """
import os, signal
_replace, _count = os.replace, [0]
def _dying_replace(src, dst, *a, **k):
    if os.path.basename(str(src)).startswith(".ckpt-"):
        _count[0] += 1
        if _count[0] == {n}:
            os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *a, **k)
os.replace = _dying_replace
"""


def _train_argv(run, resume):
    argv = ["--threads", "1", "train", "--config", TINY, "--set", f"train.out_dir={run}", "--set", f"train.steps={STEPS}",
            "--set", "train.ckpt_every=1", "--set", "train.log_every=1"]
    return argv + (["--resume", resume] if resume else [])


def _child_main(argv, patch, log_path):
    """Body of a forkserver child: the CLI, after `patch` (the kill points above)."""
    sys.stdout = sys.stderr = open(log_path, "w", buffering=1)
    exec(patch, {})
    from infdiff.cli import main as cli_main

    sys.exit(cli_main(argv))


class _Child:
    """A training process: `python -m infdiff train ...` (real=True), else a child forked from
    a forkserver that has torch and infdiff imported already (the same CLI, seconds faster)."""

    def __init__(self, argv, patch, log_path, real):
        self.log_path = log_path
        if real:
            self._log = open(log_path, "w")
            self.proc = subprocess.Popen([sys.executable, "-m", "infdiff", *argv], stdout=self._log, stderr=self._log,
                                         env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
        else:
            ctx = multiprocessing.get_context("forkserver")
            # torch.optim imports torch._dynamo lazily: seconds a child would spend before its first step
            ctx.set_forkserver_preload(["torch", "torch._dynamo", "tqdm", "infdiff.cli", "infdiff.train", "infdiff.data",
                                        __name__])
            self.proc = ctx.Process(target=_child_main, args=(argv, patch, log_path))
            self.proc.start()
        self.pid = self.proc.pid

    def running(self):
        return self.proc.poll() is None if isinstance(self.proc, subprocess.Popen) else self.proc.is_alive()

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout=180):
        if isinstance(self.proc, subprocess.Popen):
            code = self.proc.wait(timeout=timeout)
            self._log.close()
            return code
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            self.kill()
            self.proc.join()
            raise AssertionError(f"training child {self.pid} hung")
        return self.proc.exitcode

    def log(self):
        with open(self.log_path) as fh:
            return fh.read()


def _wait_for(pred, child, timeout=120.0, poll=0.0005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        if not child.running():
            return False
        time.sleep(poll)
    raise AssertionError("the training child made no progress")


def test_sigkill_at_random_points_then_resume_loses_no_saved_step(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the forkserver
    rng = random.Random(12)
    run = str(tmp_path / "run")
    ckpt, metrics = os.path.join(run, "checkpoint.pt"), os.path.join(run, "metrics.csv")

    # the uninterrupted run, in this process
    torch.set_num_threads(1)
    ref_cfg = load_config(TINY, {"train.out_dir": str(tmp_path / "ref"), "train.steps": STEPS, "train.ckpt_every": 0})
    ref = Trainer(ref_cfg, quiet=True)
    ref.fit()
    ref_state = ref.state()

    def temp_files():
        return [f for f in os.listdir(run) if f.startswith(".ckpt-")] if os.path.isdir(run) else []

    # (kind, patch, real process): random instants during steps; the instant a checkpoint temp
    # file appears; deterministic kills halfway through torch.save and just before the rename
    plan = [("random", None, True), ("temp-file", None, False), ("mid-write", _MID_WRITE, False),
            ("before-rename", _BEFORE_RENAME, False), ("random", None, False), ("temp-file", None, False),
            ("random", None, False)]
    history = []
    for kind, patch, real in plan:
        before = _ckpt_step(ckpt)
        if before == STEPS:
            break
        code = patch.format(n=rng.randint(2, 3)) if patch else ""
        t0 = time.monotonic()
        child = _Child(_train_argv(run, ckpt if before is not None else None), code,
                       str(tmp_path / f"child{len(history)}.log"), real)
        try:
            start_steps, extra = len(_metric_steps_live(metrics)), rng.randint(1, 2)
            if kind == "random":
                _wait_for(lambda: len(_metric_steps_live(metrics)) >= start_steps + 1, child)
                time.sleep(rng.uniform(0.0, 0.3))
                child.kill()
            elif kind == "temp-file":
                _wait_for(lambda: len(_metric_steps_live(metrics)) >= start_steps + extra, child)
                if _wait_for(lambda: bool(temp_files()), child):
                    child.kill()
            code = child.wait()
        finally:
            if child.running():
                child.kill()
                child.wait()
        assert code in (-signal.SIGKILL, 0), (kind, code, child.log())
        after = _ckpt_step(ckpt)  # always readable: load_checkpoint raises on a torn file
        logged = _metric_steps(metrics)
        history.append((kind, code, before, after, logged[-1] if logged else None, round(time.monotonic() - t0, 1)))
        if logged and logged[-1] > 1:
            assert after is not None, history
        if before is not None:
            assert after >= before, history  # the checkpoint never goes back
        if logged and after is not None:
            # every step is logged before it is saved: at most the step being written is unsaved
            assert after >= logged[-1] - 1, history
    # finish: one more resume, left alone
    if _ckpt_step(ckpt) != STEPS:
        child = _Child(_train_argv(run, ckpt if _ckpt_step(ckpt) is not None else None), "",
                       str(tmp_path / "final.log"), False)
        assert child.wait() == 0, child.log()
    assert sum(1 for h in history if h[1] == -signal.SIGKILL) >= 5, history  # the kills did interrupt
    final = load_checkpoint(ckpt)
    for key in ("model", "ema"):
        assert torch.equal(_flat(final[key]), _flat(ref_state[key])), (key, history)
    assert torch.equal(_opt_flat(final["opt"]), _opt_flat(ref_state["opt"]))
    assert torch.equal(final["gen"], ref_state["gen"]) and torch.equal(final["torch_rng"], ref_state["torch_rng"])
    assert _metric_steps(metrics) == list(range(1, STEPS + 1))  # rows past a resumed step are redone, not doubled
    assert temp_files() == []  # temp files of killed writers are cleaned up


# ------------------------------------------------------------ --resume of another config


def test_resume_with_another_model_or_config_names_the_fields(tiny_cfg, tmp_path, capsys):
    first = Trainer(tiny_cfg, quiet=True)
    first.fit(stop_at=2)
    ckpt = first.ckpt_path
    other = load_config(TINY, {"train.out_dir": str(tmp_path / "b"), "model.channels": 16, "model.kernel_size": 3,
                               "diffusion.steps": 50, "data.resolution": 24})
    with pytest.raises(ValueError) as err:
        Trainer(other, resume=ckpt, quiet=True)
    msg = str(err.value)
    for line in ("model.channels: checkpoint 8, this config 16", "model.kernel_size: checkpoint 5, this config 3",
                 "diffusion.steps: checkpoint 100, this config 50", "data.resolution: checkpoint 16, this config 24"):
        assert line in msg, msg
    assert "train.out_dir" not in msg
    argv = ["train", "--config", TINY, "--resume", ckpt, "--set", f"train.out_dir={tmp_path / 'c'}",
            "--set", "model.unet_mults=[1, 1]"]
    assert main(argv) == 2
    assert "model.unet_mults: checkpoint [1, 2], this config [1, 1]" in capsys.readouterr().err

    # the sampler's settings change silently too (they were not trained), but not the noise mode,
    # which is the training noise at every level other than data.resolution
    sampling = load_config(TINY, {"train.out_dir": str(tmp_path / "s"), "diffusion.sample_steps": 7,
                                  "diffusion.wiener_nsr": 0.2, "diffusion.sampler": "ddpm"})
    assert Trainer(sampling, resume=ckpt).step == 2
    assert "diffusion." not in capsys.readouterr().err
    with pytest.raises(ValueError, match="diffusion.noise: checkpoint 'function', this config 'pixel'"):
        Trainer(load_config(TINY, {"train.out_dir": str(tmp_path / "p"), "diffusion.noise": "pixel"}), resume=ckpt,
                quiet=True)

    # run-control fields change silently; training fields change with a note, the config's values used
    more = load_config(TINY, {"train.out_dir": str(tmp_path / "d"), "train.steps": 40, "train.lr": 1e-3})
    resumed = Trainer(more, resume=ckpt)
    err = capsys.readouterr().err
    assert "train.lr: checkpoint 0.002 -> 0.001" in err and "train.steps" not in err
    assert resumed.step == 2
    resumed.fit(stop_at=3)  # each step sets the lr from this config's schedule (constant here)
    assert all(g["lr"] == 1e-3 for g in resumed.opt.param_groups)

    # a checkpoint without training state (sampling-only) cannot be resumed, and says so
    state = load_checkpoint(ckpt)
    del state["opt"]
    from infdiff.checkpoint import save_checkpoint

    bare = str(tmp_path / "bare.pt")
    save_checkpoint({k: v for k, v in state.items() if k != "format"}, bare)
    with pytest.raises(ValueError, match="no 'opt' state"):
        Trainer(tiny_cfg, resume=bare, quiet=True)


# ------------------------------------------------------------ NaN / Inf


def _poison_loss_at(trainer, step, value):
    original = trainer.diffusion.training_loss

    def loss(*args, **kwargs):
        out = original(*args, **kwargs)
        return out * value if trainer.step + 1 == step else out

    trainer.diffusion.training_loss = loss


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_cfg, value):
    tiny_cfg.train.ckpt_every = 2
    trainer = Trainer(tiny_cfg, quiet=True)
    _poison_loss_at(trainer, 5, value)
    with pytest.raises(TrainingDiverged) as err:
        trainer.fit(stop_at=8)
    msg = str(err.value)
    assert "at step 5" in msg and ("nan" in msg or "inf" in msg) and "last good checkpoint (step 4)" in msg, msg
    state = load_checkpoint(trainer.ckpt_path)
    assert state["step"] == 4 and torch.isfinite(_flat(state["model"])).all()
    assert trainer.step == 4 and torch.isfinite(_flat(trainer.model.state_dict())).all()  # never took the step
    # the last good checkpoint resumes and, without the poison, continues as normal
    resumed = Trainer(tiny_cfg, resume=trainer.ckpt_path, quiet=True)
    resumed.fit(stop_at=6)
    assert load_checkpoint(trainer.ckpt_path)["step"] == 6


def test_huge_learning_rate_is_caught(tiny_cfg, capsys):
    argv = ["train", "--config", TINY, "--set", f"train.out_dir={tiny_cfg.train.out_dir}", "--set", "train.lr=1e30",
            "--set", "train.grad_clip=0", "--set", "train.ckpt_every=1", "--set", "train.steps=20"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "became" in err and "at step" in err and "last good checkpoint" in err, err
    step = int(err.split("at step ")[1].split(";")[0])
    state = load_checkpoint(os.path.join(tiny_cfg.train.out_dir, "checkpoint.pt"))
    assert state["step"] == step - 1 and torch.isfinite(_flat(state["model"])).all()


def test_saves_never_write_non_finite_weights(tiny_cfg, monkeypatch):
    tiny_cfg.train.ckpt_every = 3
    trainer = Trainer(tiny_cfg, quiet=True)
    trainer.fit(stop_at=3)
    good = _flat(load_checkpoint(trainer.ckpt_path)["model"])
    # weights broken behind the loss check's back (the EMA, which training never reads back):
    # the periodic save refuses
    original = Trainer.train_step

    def breaking_step(self, x0):
        loss = original(self, x0)
        if self.step == 5:
            with torch.no_grad():
                next(self.ema.parameters()).view(-1)[0] = float("nan")
        return loss

    monkeypatch.setattr(Trainer, "train_step", breaking_step)
    with pytest.raises(TrainingDiverged, match="not saving step 6: NaN/Inf in ema.*last good checkpoint \\(step 3\\)"):
        trainer.fit(stop_at=7)
    assert torch.equal(_flat(load_checkpoint(trainer.ckpt_path)["model"]), good)
    # the end-of-fit save refuses too
    with pytest.raises(TrainingDiverged, match="not saving"):
        trainer.fit(stop_at=trainer.step)
    # and the Ctrl-C save: reports, keeps the file, re-raises the interrupt
    monkeypatch.setattr(Trainer, "train_step", lambda self, x0: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(stop_at=9)
    assert torch.equal(_flat(load_checkpoint(trainer.ckpt_path)["model"]), good)


def test_ctrl_c_mid_step_saves_a_state_that_resumes_bit_identically(tiny_cfg, monkeypatch):
    # dropout draws from torch's global RNG; 16 examples in batches of 4 put epoch starts (new
    # DataLoaders) at steps 4 and 8, so the resume at step 5 starts one mid-epoch
    tiny_cfg.train.ckpt_every, tiny_cfg.model.dropout, tiny_cfg.data.grf_size = 0, 0.2, 16
    straight = Trainer(tiny_cfg, quiet=True)
    straight.fit(stop_at=8)

    interrupted = Trainer(tiny_cfg, quiet=True)
    original = interrupted.diffusion.training_loss

    def loss_then_ctrl_c(*args, **kwargs):
        out = original(*args, **kwargs)  # draws this step's random numbers first
        if interrupted.step == 5:
            raise KeyboardInterrupt
        return out

    interrupted.diffusion.training_loss = loss_then_ctrl_c
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(stop_at=8)
    assert load_checkpoint(interrupted.ckpt_path)["step"] == 5
    resumed = Trainer(tiny_cfg, resume=interrupted.ckpt_path, quiet=True)
    resumed.fit(stop_at=8)
    assert torch.equal(_flat(resumed.model.state_dict()), _flat(straight.model.state_dict()))
    assert torch.equal(_flat(resumed.ema.state_dict()), _flat(straight.ema.state_dict()))

    # Ctrl-C inside the weight update (half applied): nothing is written, the last checkpoint stays
    import infdiff.train as train_mod

    before = os.path.getmtime(resumed.ckpt_path), load_checkpoint(resumed.ckpt_path)["step"]
    monkeypatch.setattr(train_mod, "ema_update", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        resumed.fit(stop_at=10)
    assert (os.path.getmtime(resumed.ckpt_path), load_checkpoint(resumed.ckpt_path)["step"]) == before


# ------------------------------------------------------------ NaN inputs of inpaint / superres


class _NoWork(torch.nn.Module):
    def forward(self, *args, **kwargs):
        raise AssertionError("the model ran on a non-finite input")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_inpaint_and_superres_refuse_non_finite_inputs_before_any_work(tiny_cfg, value):
    from infdiff.diffusion import MollifiedDiffusion

    diff, model = MollifiedDiffusion(tiny_cfg), _NoWork()
    images = torch.zeros(2, 1, 16, 16)
    images[1, 0, 3, 4] = value
    mask = named_mask("center", (16, 16))
    with pytest.raises(ValueError, match=r"inpaint: images holds 1 NaN/Inf values \(first at \[1, 0, 3, 4\]"):
        guided.inpaint(model, diff, tiny_cfg, images, mask, steps=2)
    with pytest.raises(ValueError, match=r"superres: low holds 1 NaN/Inf"):
        guided.superres(model, diff, tiny_cfg, images, 32, steps=2)
    bad_mask = mask.clone()
    bad_mask[0, 0, 0, 0] = value
    with pytest.raises(ValueError, match="inpaint: mask"):
        guided.inpaint(model, diff, tiny_cfg, torch.zeros(2, 1, 16, 16), bad_mask, steps=2)
    for bad in (mask * 2, torch.ones(1, 1, 8, 8)):
        with pytest.raises(ValueError, match="inpaint: mask"):
            guided.inpaint(model, diff, tiny_cfg, torch.zeros(2, 1, 16, 16), bad, steps=2)
    with pytest.raises(ValueError, match="superres: resolution"):
        guided.superres(model, diff, tiny_cfg, torch.zeros(2, 1, 16, 16), 0, steps=2)
    with pytest.raises(ValueError, match="superres: resolution .* 16 must be above the input's 16 px"):
        guided.superres(model, diff, tiny_cfg, torch.zeros(2, 1, 16, 16), 16, steps=2)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        guided.inpaint(model, diff, tiny_cfg, torch.zeros(16, 16), mask, steps=2)
