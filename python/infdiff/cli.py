"""`infdiff` command line: one thin function per command."""
import argparse
import os
import sys
import time

import torch

from .config import ConfigError, load_config, parse_override, preset_names
from .device import DEVICE_NAMES
from .masks import MASK_SHAPES

QUALITY_RESOLUTIONS = (28, 56)


def _config(path, overrides):
    return load_config(path, dict(parse_override(o) for o in overrides or []))


def cmd_train(args):
    from .train import train

    cfg = _config(args.config, args.set)
    trainer = train(cfg, resume=args.resume)
    if trainer.is_main:
        print(f"checkpoint: {trainer.ckpt_path}\nmetrics: {trainer.metrics_path}")


def _observations(args, cfg, resolution):
    """(n, C, R, R) images in [-1, 1]: a PNG (--image) or the first --n of the checkpoint
    config's dataset, test split."""
    import dataclasses

    from .images import read_png, resize

    if args.image:
        return read_png(args.image, cfg.data.channels, resolution).expand(args.n, -1, -1, -1).contiguous()
    from .data import build_dataset

    ds = build_dataset(dataclasses.replace(cfg.data, split="test", limit=args.n))
    x = torch.stack([ds[i] for i in range(min(args.n, len(ds)))])
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"the {cfg.data.name} test images hold NaN/Inf values: pass a PNG with --image")
    return resize(x, (resolution, resolution)) if x.shape[-1] != resolution else x


def cmd_inpaint(args):
    from .images import save_grid
    from .masks import load_mask
    from .sample import Sampler

    sampler = Sampler.from_checkpoint(args.ckpt, args.device)
    res = args.resolution or sampler.train_resolution
    images = _observations(args, sampler.cfg, res)
    # the mask is drawn on the CPU: the same seed gives the same mask on every device
    mask = load_mask(args.mask, (res, res), torch.Generator().manual_seed(args.seed))
    if args.start_t is not None:
        if args.start != 1.0:
            raise ValueError("--start-t (start from the encoding of the masked image) and --start (from the noised "
                             "input) are two ways to start: give one")
        out = sampler.inpaint_encode(images, mask, args.start_t, steps=args.steps, generator=sampler.generator(args.seed))
    else:
        out = sampler.inpaint(images, mask, steps=args.steps, guidance_scale=args.guidance, start=args.start,
                              generator=sampler.generator(args.seed))
    os.makedirs(args.out, exist_ok=True)
    for name, x in (("inpaint_input", images), ("inpaint_mask", mask.expand_as(images) * 2 - 1),
                    ("inpaint_masked", images * mask), ("inpainted", out)):
        print(save_grid(x, os.path.join(args.out, f"{name}.png")))


def cmd_superres(args):
    from .images import rms_after_downsampling, save_grid
    from .sample import Sampler

    sampler = Sampler.from_checkpoint(args.ckpt, args.device)
    low_res = args.input_resolution or sampler.train_resolution
    if args.resolution <= low_res:
        raise ValueError(f"--resolution {args.resolution} must be above the input resolution {low_res} px "
                         f"(--input-resolution, default the training resolution): super-resolution only goes up")
    fno = sampler.cfg.model.family == "fno"
    method = args.method or ("band" if fno else "sdedit")
    if fno != (method == "band"):
        raise ValueError(f"--method {method}: model.family {sampler.cfg.model.family} checkpoints take --method "
                         f"{'band' if fno else 'sdedit or encode'}")
    if fno and (args.guidance is not None or args.start is not None):
        raise ValueError("--guidance and --start are for the mollified family's sdedit; --method band (fno) replaces "
                         "the input's Fourier band at every step instead")
    if method == "encode":
        sampler.require_autoencoder("superres --method encode")  # before reading any data
    low = _observations(args, sampler.cfg, low_res)
    if method == "encode":
        out = sampler.superres_encode(low, args.resolution, steps=args.steps, generator=sampler.generator(args.seed))
    else:
        guidance = 1.0 if args.guidance is None else args.guidance
        out = sampler.superres(low, args.resolution, steps=args.steps, guidance_scale=guidance,
                               start=0.5 if args.start is None else args.start, generator=sampler.generator(args.seed))
    suffix = "" if method == "sdedit" else f"_{method}"
    bicubic = torch.nn.functional.interpolate(low, size=(args.resolution,) * 2, mode="bicubic", align_corners=False)
    os.makedirs(args.out, exist_ok=True)
    for name, x in ((f"superres_input_{low_res}px", low), (f"superres_bicubic_{args.resolution}px", bicubic.clamp(-1, 1)),
                    (f"superres{suffix}_{args.resolution}px", out)):
        print(save_grid(x, os.path.join(args.out, f"{name}.png")))
    err = rms_after_downsampling(out, low)
    print(f"rms difference between the output downsampled to {low_res} px and the input ({method}): {err:.4f}")


def _positive(name, value):
    if value is not None and value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def cmd_sample(args):
    from .family import noise_grid
    from .images import save_grid, save_npz, save_resolution_rows
    from .sample import Sampler

    _positive("--n", args.n)
    _positive("--steps", args.steps)
    for res in args.resolution:
        _positive("--resolution", res)
    overrides = dict(parse_override(o) for o in args.set or [])
    sampler = Sampler.from_checkpoint(args.ckpt, args.device, overrides=overrides).with_one_noise(
        args.resolution, overrides)
    os.makedirs(args.out, exist_ok=True)
    arrays = {}
    for res in args.resolution:
        arrays[res] = sampler.sample(args.n, res, steps=args.steps, sampler=args.sampler,
                                     generator=sampler.generator(args.seed))
        if args.format == "png":
            print(save_grid(arrays[res], os.path.join(args.out, f"samples_{res}px.png")))
    if args.format == "npz":
        print(save_npz(arrays, os.path.join(args.out, "samples.npz"), noise_grid=noise_grid(sampler.cfg)))
    elif len(arrays) > 1:
        print(save_resolution_rows(arrays, os.path.join(args.out, "samples_by_resolution.png")))


def _loss_plot(metrics_csv, path):
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv) as fh:
        rows = list(csv.DictReader(fh))
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows])
    ax.set_xlabel("step")
    ax.set_ylabel("loss ||f - T xi||^2")
    ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _format_scores(resolution, s):
    import math

    from .evaluate.features import CONFIDENT

    return (f"{resolution:>4d} px: confident (p >= {CONFIDENT}) {100 * s['confident_share']:5.1f} %, "
            f"class entropy {s['class_entropy']:.3f} / {math.log(10):.3f}, histogram {s['histogram']}")


def cmd_demo(args):
    from .images import save_grid, save_resolution_rows
    from .train import train

    overrides = {"train.out_dir": args.out}
    if args.minutes is not None:
        overrides["train.max_minutes"] = args.minutes
    if args.device is not None:
        overrides["train.device"] = args.device
    for o in args.set or []:
        k, v = parse_override(o)
        overrides[k] = v
    cfg = load_config(args.config, overrides)
    start = time.time()
    trainer = train(cfg)
    # on the training device: the EMA model stays where it was trained
    sampler = trainer.sampler().with_one_noise(args.resolution)
    print(f"trained {trainer.step} steps in {(time.time() - start) / 60:.1f} min")
    # no metrics when the budget ended before the first logged step
    has_metrics = os.path.exists(trainer.metrics_path)
    outputs = [_loss_plot(trainer.metrics_path, os.path.join(args.out, "loss.png"))] if has_metrics else []
    scored, shown = {}, {}
    for res in args.resolution:
        # the quality check reuses the grid's samples, topped up to --quality-n at 28/56 px
        check = res in QUALITY_RESOLUTIONS and cfg.data.name == "mnist" and args.quality_n > 0
        n = max(args.n, args.quality_n) if check else args.n
        x = sampler.sample(n, res, steps=args.steps, generator=sampler.generator(0))
        shown[res] = x[: args.n]
        outputs.append(save_grid(shown[res], os.path.join(args.out, f"samples_{res}px.png")))
        if check:
            scored[res] = x[: args.quality_n]
    if len(shown) > 1:
        outputs.append(save_resolution_rows(shown, os.path.join(args.out, "samples_by_resolution.png")))
    print(f"demo finished sampling after {(time.time() - start) / 60:.1f} min")
    print("demo outputs:\n  " + "\n  ".join(os.path.abspath(p) for p in outputs + [trainer.ckpt_path]))
    if scored:
        from .evaluate.features import INPUT_RESOLUTION, classifier_scores, load_classifier
        from .evaluate.metrics import to_resolution

        classifier = load_classifier("mnist")
        print(f"quality check (the eval's feature CNN on real MNIST; {args.quality_n} samples per resolution):")
        for res, x in scored.items():
            print("  " + _format_scores(res, classifier_scores(classifier, to_resolution(x, INPUT_RESOLUTION))))
    print(f"demo total {(time.time() - start) / 60:.1f} min")
    if trainer.budget_note:
        print(f"note: {trainer.budget_note}")
    print(f"next: infdiff eval --ckpt {trainer.ckpt_path} --resolution {' '.join(map(str, args.resolution))} --n 500")


CONFIG_HELP = ("a YAML file or a packaged preset by name (" + ", ".join(preset_names()) +
               "; configs/<name>.yaml works too)")


def _device_option(parser):
    parser.add_argument("--device", choices=DEVICE_NAMES, default="auto",
                        help="where the model runs (default auto: CUDA when torch sees a GPU, else the CPU)")


def build_parser():
    p = argparse.ArgumentParser(prog="infdiff", description="∞-Diff: mollified diffusion at any resolution")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train from a YAML config")
    t.add_argument("--config", required=True, help=CONFIG_HELP)
    t.add_argument("--resume", help="checkpoint to continue from (optimizer, EMA, step, RNG)")
    t.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")
    t.set_defaults(func=cmd_train)
    s = sub.add_parser("sample", help="sample PNG grids from a checkpoint")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--resolution", type=int, nargs="+", default=[28])
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--sampler", choices=["ddim", "ddpm", "sde", "ode", "langevin"], default=None,
                   help="ddim or ddpm (model.family mollified); sde, ode or langevin (model.family fno); "
                        "default: the checkpoint's")
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="samples")
    _device_option(s)
    s.add_argument("--format", choices=["png", "npz"], default="png",
                   help="png: one grid per resolution; npz: the raw float32 arrays in [-1, 1], "
                        "one array 'samples_<R>px' (n, C, R, R) per resolution, for external FID tools")
    s.add_argument("--set", action="append", metavar="diffusion.FIELD=VALUE",
                   help="a sampling setting other than the checkpoint's (diffusion.wiener_nsr, noise, sampler, "
                        "sample_steps, noise_grid: e.g. 128 for one function per seed at every resolution "
                        "up to 128; function_space.sampler, sample_steps)")
    s.set_defaults(func=cmd_sample)
    d = sub.add_parser("demo", help="train the MNIST preset on this machine, then sample at 28/56/112 px")
    d.add_argument("--config", default="mnist", help=CONFIG_HELP + " (default: mnist)")
    d.add_argument("--device", choices=DEVICE_NAMES, default=None, help="the training (and sampling) device "
                   "(default: the config's train.device, auto = CUDA when present)")
    d.add_argument("--minutes", type=float, default=None, help="training time budget (default: the preset's)")
    d.add_argument("--resolution", type=int, nargs="+", default=[28, 56, 112])
    d.add_argument("--n", type=int, default=16)
    d.add_argument("--steps", type=int, default=None)
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--quality-n", type=int, default=48, help="samples scored by the feature CNN of `infdiff eval` at 28 and 56 px (0 = skip)")
    d.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE")
    d.set_defaults(func=cmd_demo)

    def observed(cmd, help_text):
        a = sub.add_parser(cmd, help=help_text)
        a.add_argument("--ckpt", required=True)
        a.add_argument("--image", default=None, help="a PNG to use (default: the first --n test images of the checkpoint's dataset)")
        a.add_argument("--n", type=int, default=8)
        a.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the config's sample_steps)")
        a.add_argument("--seed", type=int, default=0)
        a.add_argument("--out", default=cmd)
        _device_option(a)
        return a

    i = observed("inpaint", "fill masked regions (reconstruction guidance + replacement of the observed pixels)")
    i.add_argument("--mask", default="center", help="a PNG (white = fill) or one of: " + ", ".join(MASK_SHAPES))
    i.add_argument("--resolution", type=int, default=None, help="default: the training resolution")
    i.add_argument("--guidance", type=float, default=2.0, help="reconstruction guidance weight lambda")
    i.add_argument("--start", type=float, default=1.0, help="t_s / T: below 1 start from the noised input")
    i.add_argument("--start-t", type=int, default=None, metavar="T_S",
                   help="autoencoder checkpoints: start the reverse process at time T_S (an integer step of "
                        "diffusion.steps) from the encoding of the masked image (its latent z and its DDIM "
                        "inversion to T_S); smaller keeps more of the image")
    i.set_defaults(func=cmd_inpaint)
    r = observed("superres", "low-resolution input -> higher-resolution output")
    r.add_argument("--input-resolution", type=int, default=None, help="default: the training resolution")
    r.add_argument("--resolution", type=int, required=True, help="output resolution")
    r.add_argument("--guidance", type=float, default=None, help="weight of the downsampled-output guidance "
                   "(sdedit; default 1.0)")
    r.add_argument("--start", type=float, default=None, help="t_s / T the upsampled input is noised to (sdedit; "
                   "default 0.5)")
    r.add_argument("--method", choices=["sdedit", "encode", "band"], default=None,
                   help="sdedit (default for model.family mollified): noise the bicubic upsample to --start and "
                        "denoise it with --guidance; encode (autoencoder checkpoints, as the paper): encode the input "
                        "to z, sample at --resolution conditioned on it; band (model.family fno, its default; Lim et "
                        "al.): the input's Fourier modes replace the state's, noised to each step's time")
    r.set_defaults(func=cmd_superres)
    from .evaluate import register as register_eval

    register_eval(sub)
    from .evaluate.compare import register as register_compare

    register_compare(sub)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's). On a busy machine fewer threads than cores can be faster")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print(f"infdiff: error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"infdiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
