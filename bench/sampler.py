"""Sampler throughput: images per second of DDIM sampling (50 steps) with the MNIST preset's
network at 1x, 2x and 4x its training resolution (28, 56, 112 px). The weights are a random
initialisation: the network does the same work whatever its weights, and no checkpoint is needed.

    python -m bench.sampler            # batch of 8 images, 3 repeats
    python -m bench.sampler --quick    # 1 image, 1 repeat, no warm-up call (~1 min on 2 cores)
    python -m bench.sampler --device cuda

The three resolutions are timed side by side (round-robin) in one process; the table shows
each one's time over the 1x time, and the JSON's top level has
`"sampler_images_per_s": {"28": ..., "56": ..., "112": ...}` (from median times).
"""
import sys

import torch

from infdiff.config import load_config
from infdiff.family import build_diffusion
from infdiff.model import build_model
from infdiff.sample import Sampler

from ._common import arg_parser, ratio_table, resolve_device, time_side_by_side, write_json

FAMILY = "sampler"
PRESET = "mnist"
SCALES = (1, 2, 4)
STEPS = 50


def make_sampler(device, seed=0):
    cfg = load_config(PRESET, overrides={"train.device": str(device)})
    torch.manual_seed(seed)
    model = build_model(cfg).to(device).eval()
    return Sampler(model, build_diffusion(cfg), cfg)


def main(argv=None):
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=None, help="images per sample call (default 8; --quick: 1)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    batch = args.batch or (1 if args.quick else 8)
    if batch < 1:
        raise SystemExit(f"--batch must be >= 1, got {batch}")
    repeats = args.repeats or (1 if args.quick else 3)
    sampler = make_sampler(device)
    base = sampler.train_resolution
    fns = {}
    for scale in SCALES:
        resolution = base * scale

        def run(resolution=resolution):
            g = sampler.generator(0)
            return sampler.sample(batch, resolution, steps=STEPS, sampler="ddim", generator=g, batch=batch)

        fns[f"{resolution}px ({scale}x)"] = run
    timings = time_side_by_side(fns, case=f"{PRESET} DDIM {STEPS} steps, batch {batch}", device=device,
                                repeats=repeats, warmup=0 if args.quick else 1)
    print(ratio_table(timings, f"{base}px (1x)", title=f"sampler throughput, {device}"))
    rates = {}
    for t, scale in zip(timings, SCALES):
        if t.median_s:
            rates[str(base * scale)] = batch / t.median_s
            print(f"{t.impl}: {rates[str(base * scale)]:.2f} images/s")
    path = write_json(FAMILY, timings, args, extra={"sampler_images_per_s": rates, "steps": STEPS, "batch": batch,
                                                    "preset": PRESET}, device=device)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
