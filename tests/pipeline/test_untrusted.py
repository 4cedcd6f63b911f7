"""Untrusted files never run code (issue 12): a checkpoint whose pickle would create a marker
file is refused, with a message that says why and how to convert a trusted file, by every
command and API that reads checkpoints; and the marker never appears. Also the other files
the project reads: configs (YAML), masks and input images (PNG), the cached LeNet weights."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

from infdiff import masks
from infdiff.checkpoint import CheckpointError, convert, load_checkpoint
from infdiff.checkpoint import main as checkpoint_main
from infdiff.cli import build_parser, main
from infdiff.config import ConfigError, load_config
from infdiff.evaluate import features
from infdiff.sample import Sampler
from infdiff.train import Trainer

from .conftest import TINY


class _System:
    """Unpickling this runs `touch marker` through os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    """Unpickling this runs Python code through builtins.exec."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _fake_state(payload):
    return {"format": "infdiff-ckpt-1", "config": {"model": {}}, "model": {}, "ema": {}, "step": 0, "opt": payload}


def _write_evil(kind, path, marker):
    """The malicious files: payloads as a whole file, inside a checkpoint-shaped dict, in the
    legacy torch format, in a plain pickle, and through builtins.exec."""
    if kind == "zip-top":
        torch.save(_System(marker), path)
    elif kind == "zip-nested":
        torch.save(_fake_state(_System(marker)), path)
    elif kind == "zip-exec":
        torch.save(_fake_state([1, {"x": _Exec(marker)}]), path)
    elif kind == "legacy":
        torch.save(_fake_state(_System(marker)), path, _use_new_zipfile_serialization=False)
    elif kind == "plain-pickle":
        with open(path, "wb") as fh:
            pickle.dump(_fake_state(_System(marker)), fh, protocol=2)
    elif kind == "plain-pickle-4":
        with open(path, "wb") as fh:
            pickle.dump(_fake_state(_Exec(marker)), fh, protocol=4)
    return str(path)


KINDS = ("zip-top", "zip-nested", "zip-exec", "legacy", "plain-pickle", "plain-pickle-4")


@pytest.fixture
def evil(tmp_path):
    marker = str(tmp_path / "MARKER")
    path = _write_evil("zip-nested", tmp_path / "evil.pt", marker)
    yield path, marker
    assert not os.path.exists(marker), "the malicious checkpoint ran code"


def _refused(text, path):
    assert "refused" in text and "convert --trust" in text and os.path.basename(path) in text, text


def test_the_payload_is_real(tmp_path):
    """Guard of this file's premise: loaded the old way (weights_only=False), each malicious
    file does run its code. Done in one child process, with markers of its own."""
    loads = []
    for kind in KINDS:
        path = _write_evil(kind, tmp_path / f"{kind}.pt", str(tmp_path / f"proof-{kind}"))
        loads.append(f"torch.load({path!r}, weights_only=False)")
    code = "import torch\n" + "\n".join(f"try:\n    {line}\nexcept Exception:\n    pass" for line in loads)
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, cwd=str(tmp_path))
    for kind in KINDS:
        assert os.path.exists(tmp_path / f"proof-{kind}"), kind


@pytest.mark.parametrize("kind", KINDS)
def test_load_checkpoint_refuses_every_payload_form(tmp_path, kind):
    marker = str(tmp_path / "MARKER")
    path = _write_evil(kind, tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _refused(str(err.value), path)
    assert not os.path.exists(marker)


def test_apis_refuse(evil, tiny_cfg):
    path, _ = evil
    with pytest.raises(CheckpointError, match="refused"):
        Sampler.from_checkpoint(path, "cpu")
    with pytest.raises(CheckpointError, match="refused"):
        Trainer(tiny_cfg, resume=path, quiet=True)
    try:
        from infdiff.evaluate import evaluate_checkpoint
    except ImportError:  # the eval package is optional here
        return
    with pytest.raises(CheckpointError, match="refused"):
        evaluate_checkpoint(path, [16], n=2, out_dir=str(os.path.dirname(path)))


def _filled_argv(command, ckpt, out):
    """argv running `command` on `ckpt`: every required option of the subcommand gets a
    plausible value (so a command added later, such as `eval`, is covered too)."""
    sub = next(a for a in build_parser()._subparsers._group_actions if a.choices)
    parser = sub.choices[command]
    argv = [command]
    for action in parser._actions:
        flag = action.option_strings[0] if action.option_strings else None
        if flag in ("--ckpt", "--resume"):
            argv += [flag, ckpt]
        elif flag == "--config":
            argv += [flag, TINY]
        elif flag == "--out":
            argv += [flag, out]
        elif action.required and flag:
            value = action.choices[0] if action.choices else ("16" if action.type is int else out)
            argv += [flag, str(value)]
    if command == "train":
        argv += ["--set", f"train.out_dir={out}"]
    return argv


def _checkpoint_commands():
    sub = next(a for a in build_parser()._subparsers._group_actions if a.choices)
    names = []
    for name, parser in sub.choices.items():
        flags = {f for a in parser._actions for f in a.option_strings}
        if "--ckpt" in flags or "--resume" in flags:
            names.append(name)
    return names


def test_every_checkpoint_command_is_covered():
    commands = set(_checkpoint_commands())
    assert {"sample", "inpaint", "superres", "train"} <= commands
    try:
        import infdiff.evaluate  # noqa: F401
    except ImportError:
        return
    assert "eval" in commands


@pytest.mark.parametrize("command", _checkpoint_commands())
def test_cli_commands_refuse(evil, tmp_path, capsys, command):
    path, _ = evil
    argv = _filled_argv(command, path, str(tmp_path / "out"))
    assert main(argv) == 2, argv
    _refused(capsys.readouterr().err, path)


def test_cli_subprocess_refuses(evil, tmp_path):
    """As a user would run it: `infdiff sample --ckpt evil.pt` exits 2 with the reason."""
    path, _ = evil
    res = subprocess.run([sys.executable, "-m", "infdiff", "sample", "--ckpt", path, "--out", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 2, res.stderr
    _refused(res.stderr, path)
    assert "Traceback" not in res.stderr


def test_convert_needs_trust_and_gives_a_safe_copy(tmp_path, tiny_cfg, capsys):
    import numpy as np

    marker = str(tmp_path / "MARKER")
    evil_path = _write_evil("zip-nested", tmp_path / "evil.pt", marker)
    assert checkpoint_main(["convert", evil_path]) == 2
    assert "--trust" in capsys.readouterr().err and not os.path.exists(marker)
    with pytest.raises(CheckpointError, match="trust"):
        convert(evil_path, str(tmp_path / "x.pt"))
    assert not os.path.exists(marker)

    # a trusted checkpoint with NumPy values (as older tools wrote): refused, converted, sampled
    trainer = Trainer(tiny_cfg, quiet=True)
    trainer.fit(stop_at=1)
    state = load_checkpoint(trainer.ckpt_path)
    state["step"], state["elapsed"] = np.int64(state["step"]), np.float64(1.5)
    state["extra"] = {"array": np.arange(3.0), "size": torch.Size([2, 3])}
    old = str(tmp_path / "old.pt")
    torch.save(state, old)
    with pytest.raises(CheckpointError, match="numpy") as err:
        load_checkpoint(old)
    _refused(str(err.value), old)
    assert checkpoint_main(["convert", "--trust", old]) == 0, capsys.readouterr().err
    safe = str(tmp_path / "old.safe.pt")
    copy = load_checkpoint(safe)
    assert copy["step"] == 1 and torch.equal(copy["extra"]["array"], torch.arange(3.0, dtype=torch.float64))
    model = Sampler.from_checkpoint(safe, "cpu").model
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trainer.ema.state_dict().values()))
    Trainer(tiny_cfg, resume=safe, quiet=True)  # and it resumes


def test_unsafe_yaml_config_is_refused(tmp_path):
    marker = str(tmp_path / "MARKER")
    bad = tmp_path / "evil.yaml"
    bad.write_text(f'train: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    assert not os.path.exists(marker)


def test_cached_lenet_weights_are_read_safely(tmp_path, monkeypatch):
    marker = str(tmp_path / "MARKER")
    _write_evil("zip-top", features.weights_path("mnist", str(tmp_path)), marker)
    retrained = []
    monkeypatch.setattr(features, "train_classifier",
                        lambda *a, **k: (retrained.append(1) or features.FeatureCNN().eval(), 0.0))
    features.load_classifier("mnist", str(tmp_path), log=lambda *_: None)
    assert retrained and not os.path.exists(marker)  # the unreadable cache is replaced, never executed


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    cfg = load_config(TINY, {"train.out_dir": str(out)})
    torch.set_num_threads(1)
    trainer = Trainer(cfg, quiet=True)
    trainer.fit(stop_at=1)
    return trainer.ckpt_path


def _bad_pngs(tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.new("L", (8, 8), 255).save(good)
    raw = good.read_bytes()
    cases = {"truncated.png": raw[: len(raw) // 2], "garbage.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
             "text.png": b"not an image at all", "empty.png": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    return [str(tmp_path / n) for n in cases]


def test_corrupt_mask_png_names_the_option(tmp_path, tiny_ckpt, capsys):
    for png in _bad_pngs(tmp_path):
        with pytest.raises(ValueError, match="--mask"):
            masks.mask_from_png(png, (16, 16))
        argv = ["inpaint", "--ckpt", tiny_ckpt, "--mask", png, "--n", "1", "--steps", "1", "--out", str(tmp_path / "o")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--mask" in err and "Traceback" not in err, err


def test_corrupt_input_png_names_the_option(tmp_path, tiny_ckpt, capsys):
    for png in _bad_pngs(tmp_path) + [str(tmp_path / "missing.png")]:
        for cmd in (["inpaint"], ["superres", "--resolution", "32"]):
            argv = cmd + ["--ckpt", tiny_ckpt, "--image", png, "--n", "1", "--steps", "1", "--out", str(tmp_path / "o")]
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert "--image" in err and "not a readable image" in err, err

