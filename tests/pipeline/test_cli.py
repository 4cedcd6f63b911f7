import os
import subprocess
import sys

import numpy as np
import pytest

from infdiff.cli import main

from .conftest import TINY


def test_train_sample_demo_end_to_end(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--config", TINY, "--set", f"train.out_dir={run}", "--set", "train.steps=3"]) == 0
    ckpt = os.path.join(run, "checkpoint.pt")
    assert main(["train", "--config", TINY, "--resume", ckpt, "--set", f"train.out_dir={run}", "--set", "train.steps=5"]) == 0
    out = str(tmp_path / "samples")
    assert main(["sample", "--ckpt", ckpt, "--resolution", "16", "32", "--steps", "2", "--n", "2", "--out", out]) == 0
    assert sorted(os.listdir(out)) == ["samples_16px.png", "samples_32px.png"]
    npz_dir = str(tmp_path / "npz")
    assert main(["sample", "--ckpt", ckpt, "--resolution", "16", "32", "--steps", "2", "--n", "3", "--out", npz_dir,
                 "--format", "npz"]) == 0
    with np.load(os.path.join(npz_dir, "samples.npz")) as arrays:
        assert sorted(arrays.files) == ["samples_16px", "samples_32px"]
        assert arrays["samples_32px"].shape == (3, 1, 32, 32) and arrays["samples_32px"].dtype == np.float32
        assert np.isfinite(arrays["samples_16px"]).all() and np.abs(arrays["samples_16px"]).max() <= 1
    # sampling settings may change after training (to choose nsr by evaluation, or to compare noises)
    argv = ["sample", "--ckpt", ckpt, "--resolution", "32", "--steps", "2", "--n", "1", "--out", npz_dir]
    assert main(argv + ["--set", "diffusion.noise=pixel", "--set", "diffusion.wiener_nsr=0.05"]) == 0
    assert main(argv + ["--set", "model.channels=4"]) == 2
    assert "--set model.channels: only sampling settings" in capsys.readouterr().err
    assert main(argv + ["--set", "diffusion.noise=white"]) == 2
    assert "diffusion.noise" in capsys.readouterr().err
    for flag in ("--n", "--steps", "--resolution"):
        assert main(["sample", "--ckpt", ckpt, flag, "0", "--out", npz_dir]) == 2
        assert f"{flag} must be >= 1, got 0" in capsys.readouterr().err
    demo = str(tmp_path / "demo")
    argv = ["demo", "--config", TINY, "--out", demo, "--resolution", "16", "32", "--n", "2", "--steps", "2"]
    assert main(argv + ["--set", "train.steps=3"]) == 0
    assert {"loss.png", "samples_16px.png", "samples_32px.png"} <= set(os.listdir(demo))
    assert "demo outputs" in capsys.readouterr().out


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["sample", "--ckpt", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["train", "--config", TINY, "--set", "train.coord_fraction=2"]) == 2
    assert "train.coord_fraction" in capsys.readouterr().err


def test_python_dash_m(tmp_path):
    res = subprocess.run([sys.executable, "-m", "infdiff", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "demo" in res.stdout


def test_demo_says_when_the_time_budget_cut_the_planned_steps(tmp_path, capsys):
    demo = str(tmp_path / "demo")
    argv = ["demo", "--config", TINY, "--out", demo, "--resolution", "16", "--n", "2", "--steps", "2",
            "--minutes", "0.0002", "--set", "train.steps=100000"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "time budget of 0.0002 min reached at step" in out and "of the 100000 planned" in out
    assert "less trained than planned" in out
    assert "infdiff eval --ckpt" in out


def test_eval_is_a_command():
    res = subprocess.run([sys.executable, "-m", "infdiff", "eval", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "--resolution" in res.stdout
