"""`infdiff` command line: one thin function per command."""
import argparse
import os
import sys
import time

import torch

from .config import ConfigError, load_config, parse_override

PRESETS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def _config(path, overrides):
    return load_config(path, dict(parse_override(o) for o in overrides or []))


def cmd_train(args):
    from .train import train

    cfg = _config(args.config, args.set)
    trainer = train(cfg, resume=args.resume)
    if trainer.is_main:
        print(f"checkpoint: {trainer.ckpt_path}\nmetrics: {trainer.metrics_path}")


def cmd_sample(args):
    from .sample import load_for_sampling, sample_images, save_grid

    cfg, model, diff = load_for_sampling(args.ckpt)
    os.makedirs(args.out, exist_ok=True)
    for res in args.resolution:
        g = torch.Generator().manual_seed(args.seed)
        x = sample_images(model, diff, cfg, args.n, res, steps=args.steps, sampler=args.sampler, generator=g)
        print(save_grid(x, os.path.join(args.out, f"samples_{res}px.png")))


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


def cmd_demo(args):
    from .sample import sample_images, save_grid
    from .train import train

    overrides = {"train.out_dir": args.out}
    if args.minutes is not None:
        overrides["train.max_minutes"] = args.minutes
    for o in args.set or []:
        k, v = parse_override(o)
        overrides[k] = v
    cfg = load_config(args.config or os.path.join(PRESETS, "mnist.yaml"), overrides)
    start = time.time()
    trainer = train(cfg)
    print(f"trained {trainer.step} steps in {(time.time() - start) / 60:.1f} min")
    outputs = [_loss_plot(trainer.metrics_path, os.path.join(args.out, "loss.png"))]
    for res in args.resolution:
        g = torch.Generator().manual_seed(0)
        x = sample_images(trainer.ema, trainer.diffusion, cfg, args.n, res, steps=args.steps, generator=g)
        outputs.append(save_grid(x, os.path.join(args.out, f"samples_{res}px.png")))
    print("demo outputs:\n  " + "\n  ".join(os.path.abspath(p) for p in outputs + [trainer.ckpt_path]))


def build_parser():
    p = argparse.ArgumentParser(prog="infdiff", description="∞-Diff: mollified diffusion at any resolution")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train from a YAML config")
    t.add_argument("--config", required=True)
    t.add_argument("--resume", help="checkpoint to continue from (optimizer, EMA, step, RNG)")
    t.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")
    t.set_defaults(func=cmd_train)
    s = sub.add_parser("sample", help="sample PNG grids from a checkpoint")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--resolution", type=int, nargs="+", default=[28])
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--sampler", choices=["ddim", "ddpm"], default=None)
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="samples")
    s.set_defaults(func=cmd_sample)
    d = sub.add_parser("demo", help="train the MNIST preset on this CPU, then sample at 28/56/112 px")
    d.add_argument("--config", default=None, help="default: configs/mnist.yaml")
    d.add_argument("--minutes", type=float, default=None, help="training time budget (default: the preset's)")
    d.add_argument("--resolution", type=int, nargs="+", default=[28, 56, 112])
    d.add_argument("--n", type=int, default=16)
    d.add_argument("--steps", type=int, default=None)
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"infdiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
