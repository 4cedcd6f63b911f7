"""The Sampler carries the model's device and dtype into everything it makes, and the trainer
hands its EMA model over on its own device (CI has no GPU: the device is checked with the
meta device and stand-ins for the parts that cannot run there, the dtype for real on the CPU)."""
import pytest
import torch

from infdiff import sample as sample_module
from infdiff.cli import build_parser, main
from infdiff.config import ConfigError, from_dict, load_config
from infdiff.diffusion import MollifiedDiffusion
from infdiff.sample import Sampler, preset_sampling_changes
from infdiff.train import Trainer


class _RecordingDiffusion:
    """Stands in for MollifiedDiffusion where the real one cannot run (the meta device): it
    records the device, dtype and generator it is asked to sample with."""

    def __init__(self):
        self.calls = []

    def sample(self, model, shape, steps, sampler, generator, device, dtype, scale):
        self.calls.append({"device": device, "dtype": dtype, "generator": generator, "scale": scale})
        return torch.zeros(shape, dtype=dtype), None  # what the caller copies back to the CPU


class _PointModel(torch.nn.Module):
    """A stand-in network: its one weight fixes the device and dtype; it records the device
    and dtype of the points it is given (B, N, C) and returns them scaled."""

    def __init__(self, device="cpu", dtype=torch.float32):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((), 0.5, device=device, dtype=dtype))
        self.seen = set()

    def forward(self, points, coords, size, t, scale=1.0):  # points (B, N, C), coords (B, N, 2), t (B,)
        self.seen.update({(points.device.type, points.dtype), (coords.device.type, None), (t.device.type, None)})
        return points * self.weight


def test_sampler_asks_for_its_models_device_and_dtype(tiny_cfg):
    model = _PointModel("meta", torch.float64)
    diffusion = _RecordingDiffusion()
    sampler = Sampler(model, diffusion, tiny_cfg)
    assert sampler.device == torch.device("meta") and sampler.dtype == torch.float64
    assert sampler.generator(0) is None  # meta has no generator; a CUDA model gets a CUDA one
    x = sampler.sample(3, 32, steps=2, generator=sampler.generator(0), batch=2)
    assert x.shape == (3, 1, 32, 32) and x.device.type == "cpu"
    assert [c["device"] for c in diffusion.calls] == [torch.device("meta")] * 2
    assert {c["dtype"] for c in diffusion.calls} == {torch.float64}
    assert {c["scale"] for c in diffusion.calls} == {32 / tiny_cfg.data.resolution}


@pytest.mark.parametrize("task", ["inpaint", "superres"])
def test_sampler_moves_guided_inputs_to_its_device(tiny_cfg, monkeypatch, task):
    seen = {}

    def guided_stand_in(model, diffusion, cfg, observed, *rest, **kwargs):
        seen["observed"] = (observed.device.type, observed.dtype)
        if task == "inpaint":
            seen["mask"] = (rest[0].device.type, rest[0].dtype)
        return torch.zeros(observed.shape[:2] + (32, 32) if task == "superres" else observed.shape)

    monkeypatch.setattr(sample_module.guided, task, guided_stand_in)
    sampler = Sampler(_PointModel("meta", torch.float64), _RecordingDiffusion(), tiny_cfg)
    images = torch.zeros(2, 1, 16, 16)
    out = sampler.inpaint(images, torch.ones(1, 1, 16, 16)) if task == "inpaint" else sampler.superres(images, 32)
    assert out.device.type == "cpu"
    assert set(seen.values()) == {("meta", torch.float64)}


def test_the_real_pipeline_runs_in_the_models_dtype(tiny_cfg):
    torch.manual_seed(0)
    model = _PointModel(dtype=torch.float64)
    sampler = Sampler(model, MollifiedDiffusion(tiny_cfg), tiny_cfg)
    x = sampler.sample(2, 16, steps=2, generator=sampler.generator(0))
    assert x.dtype == torch.float64 and torch.isfinite(x).all()
    out = sampler.inpaint(torch.zeros(2, 1, 16, 16), torch.ones(1, 1, 16, 16), steps=2, generator=sampler.generator(0))
    assert out.dtype == torch.float64
    assert ("cpu", torch.float64) in model.seen and ("cpu", torch.float32) not in model.seen


def test_the_trainer_hands_over_its_ema_on_its_device(tiny_cfg):
    trainer = Trainer(tiny_cfg, quiet=True)
    sampler = trainer.sampler()
    assert sampler.model is trainer.ema and sampler.device == trainer.device == next(trainer.ema.parameters()).device


def test_from_checkpoint_puts_the_ema_model_on_the_device_asked(tiny_cfg):
    trainer = Trainer(tiny_cfg, quiet=True)
    trainer.fit(stop_at=1)
    on_meta = Sampler.from_checkpoint(trainer.ckpt_path, "meta")
    assert on_meta.device.type == "meta" and all(p.is_meta for p in on_meta.model.parameters())
    on_cpu = Sampler.from_checkpoint(trainer.ckpt_path, "cpu")
    assert not on_cpu.model.training and on_cpu.train_resolution == tiny_cfg.data.resolution
    assert all(torch.equal(a, b) for a, b in zip(on_cpu.model.state_dict().values(), trainer.ema.state_dict().values()))
    with pytest.raises(ValueError, match="--device: 'nowhere' is not a device"):
        Sampler.from_checkpoint(trainer.ckpt_path, "nowhere")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda: torch sees no CUDA device"):
            Sampler.from_checkpoint(trainer.ckpt_path, "cuda")


def test_every_sampling_command_takes_a_device():
    sub = next(a for a in build_parser()._subparsers._group_actions if a.choices)
    for command in ("sample", "inpaint", "superres", "eval", "demo"):
        device = next(a for a in sub.choices[command]._actions if "--device" in a.option_strings)
        assert set(device.choices) == {"auto", "cpu", "cuda"}, command


def test_sampler_refuses_a_model_without_weights(tiny_cfg):
    with pytest.raises(ValueError, match="model: has no parameters"):
        Sampler(torch.nn.Identity(), MollifiedDiffusion(tiny_cfg), tiny_cfg)


def test_train_compile_reaches_torch_compile(tiny_cfg, monkeypatch):
    calls = []

    class Counting(torch.nn.Module):  # what the stand-in torch.compile returns: counts the training forwards
        def __init__(self, model):
            super().__init__()
            self.model, self.forwards = model, 0

        def forward(self, *args, **kwargs):
            self.forwards += 1
            return self.model(*args, **kwargs)

    def fake_compile(model, **kwargs):
        calls.append(kwargs)
        return Counting(model)

    with pytest.raises(ConfigError, match="`train.compile`: expected true/false, got 'fast'"):
        from_dict({"train": {"compile": "fast"}})
    monkeypatch.setattr(torch, "compile", fake_compile)
    eager = Trainer(tiny_cfg, quiet=True)
    assert eager.net is eager.model and calls == []
    tiny_cfg.train.compile = True
    trainer = Trainer(tiny_cfg, quiet=True)
    assert calls == [{"fullgraph": True}] and trainer.net.model is trainer.model
    trainer.fit(stop_at=2)
    assert trainer.net.forwards == 2


def test_cli_sample_on_the_cpu(tiny_cfg, tmp_path, capsys):
    trainer = Trainer(tiny_cfg, quiet=True)
    trainer.fit(stop_at=1)
    out = str(tmp_path / "s")
    argv = ["sample", "--ckpt", trainer.ckpt_path, "--resolution", "16", "--steps", "1", "--n", "1", "--out", out]
    assert main(argv + ["--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip().endswith("samples_16px.png")
    with pytest.raises(SystemExit):
        main(argv + ["--device", "tpu"])
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_several_resolutions_share_one_noise_unless_told_otherwise():
    from infdiff.config import load_config
    from infdiff.sample import one_noise_grid

    from .conftest import PRESETS, TINY

    tiny = load_config(TINY)
    r0 = tiny.data.resolution
    assert one_noise_grid(tiny, [r0, 2 * r0, 4 * r0]) == 4 * r0  # the finest grid holds every coarser one
    assert one_noise_grid(tiny, [r0 // 2, r0]) == r0  # never below the training grid (config rule)
    assert one_noise_grid(tiny, [2 * r0, r0 // 2]) == 2 * r0
    # one resolution, or the same one twice: nothing to pair
    assert one_noise_grid(tiny, [2 * r0]) == 0 and one_noise_grid(tiny, [r0, r0]) == 0
    # a choice made elsewhere is kept: --set (even 0, independent draws), the config, the per-pixel noise
    assert one_noise_grid(tiny, [r0, 2 * r0], {"diffusion.noise_grid": 0}) == 0
    assert one_noise_grid(load_config(TINY, {"diffusion.noise_grid": 8 * r0}), [r0, 2 * r0]) == 0
    assert one_noise_grid(load_config(TINY, {"diffusion.noise": "pixel"}), [r0, 2 * r0]) == 0
    # the fno family draws its own noise
    assert one_noise_grid(load_config(f"{PRESETS}/fno_grf.yaml"), [32, 64]) == 0


def test_with_settings_rebuilds_the_diffusion_and_keeps_the_model():
    from infdiff.config import load_config
    from infdiff.family import build_diffusion
    from infdiff.model import build_model

    from .conftest import TINY

    cfg = load_config(TINY)
    sampler = Sampler(build_model(cfg).eval(), build_diffusion(cfg), cfg)
    paired = sampler.with_settings({"diffusion.noise_grid": 4 * cfg.data.resolution})
    assert paired.model is sampler.model and paired.diffusion is not sampler.diffusion
    assert paired.diffusion.noise_grid == paired.cfg.diffusion.noise_grid == 4 * cfg.data.resolution
    assert sampler.diffusion.noise_grid == 0  # the original is untouched
    with pytest.raises(ValueError, match="only sampling settings"):
        sampler.with_settings({"model.channels": 4})


def test_resolution_rows_repeat_each_grids_pixels(tmp_path):
    import numpy as np
    from PIL import Image

    from infdiff.images import save_resolution_rows

    gen = torch.Generator().manual_seed(0)
    coarse, fine = torch.rand(3, 1, 4, 4, generator=gen) * 2 - 1, torch.rand(5, 1, 8, 8, generator=gen) * 2 - 1
    path = save_resolution_rows({8: fine, 4: coarse}, str(tmp_path / "rows.png"), n=8)
    with Image.open(path) as img:
        grid = np.asarray(img).astype(np.float32) / 127.5 - 1
    assert grid.shape == (2 * 9 + 1, 3 * 9 + 1)  # n = 3, the fewest given; coarsest row first; 1-pixel gaps
    for i in range(3):
        top = grid[1:9, 1 + 9 * i : 9 + 9 * i]  # coarse sample i, each pixel a 2 x 2 block
        np.testing.assert_allclose(top, np.kron(coarse[i, 0].numpy(), np.ones((2, 2))), atol=1 / 127.5)
        bottom = grid[10:18, 1 + 9 * i : 9 + 9 * i]
        np.testing.assert_allclose(bottom, fine[i, 0].numpy(), atol=1 / 127.5)  # uint8 rounding
    with pytest.raises(ValueError, match="samples"):
        save_resolution_rows({}, str(tmp_path / "none.png"))


def test_a_preset_checkpoint_says_when_it_samples_otherwise_than_the_preset(tmp_path):
    """A checkpoint samples with the config it was trained with; when that is a packaged preset whose
    sampling settings have changed since, loading it says which, and the --set that samples as the
    preset does. The user's own --set, another model, or the preset's own settings: no note."""
    base = load_config("tiny")
    steps, nsr = base.diffusion.sample_steps, base.diffusion.wiener_nsr
    assert preset_sampling_changes(base) is None
    older = {"diffusion.sample_steps": steps + 7, "diffusion.wiener_nsr": 2 * nsr}
    assert preset_sampling_changes(load_config("tiny", older)) == (
        "tiny", {"diffusion.sample_steps": (steps + 7, steps), "diffusion.wiener_nsr": (2 * nsr, nsr)})
    # a training budget or folder of its own is still the preset; another model is not
    assert preset_sampling_changes(load_config("tiny", {**older, "train.steps": 3}))[0] == "tiny"
    assert preset_sampling_changes(load_config("tiny", {**older, "model.channels": 2 * base.model.channels})) is None
    # what --set chooses is the user's
    assert preset_sampling_changes(load_config("tiny", older), {"diffusion.wiener_nsr": 2 * nsr}) == (
        "tiny", {"diffusion.sample_steps": (steps + 7, steps)})
    trainer = Trainer(load_config("tiny", {**older, "train.out_dir": str(tmp_path)}), quiet=True)
    trainer.fit(stop_at=1)
    lines = []
    Sampler.from_checkpoint(trainer.ckpt_path, "cpu", log=lines.append)
    assert len(lines) == 1 and "trained as preset 'tiny'" in lines[0], lines
    assert f"diffusion.sample_steps {steps + 7} (the preset now: {steps})" in lines[0]
    assert f"--set diffusion.wiener_nsr={nsr} --set diffusion.sample_steps={steps}" in lines[0]
    lines = []
    Sampler.from_checkpoint(trainer.ckpt_path, "cpu", overrides={"diffusion.sample_steps": steps,
                                                                 "diffusion.wiener_nsr": nsr}, log=lines.append)
    assert lines == []
