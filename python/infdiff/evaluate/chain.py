"""Where the reverse chain leaves the forward process (docs/evaluation.md#the-reverse-chains-band-power).

A sampler that draws from the model's law visits states x_t whose power, band by band, should be
what the forward process holds at the same time t:

    ratio_k(t) = P_k(x_t) / (abar_t P_k(T x0) + (1 - abar_t) P_k(T xi))

(radially averaged power, fft2 norm "forward"; P(T x0) from held-out images mollified, P(T xi)
from draws of the process's mollified noise at the same grid; x0 and xi are independent, so the
forward state's expected power per mode is that sum). A perfect model keeps every ratio at 1 up to
the sampling noise of n samples, whatever the step count; the time from which a band leaves 1 is
where the sampler goes wrong, and which bands. The last row (t = -1) is the sampler's output, the
estimate of T x0: there a perfect model keeps snr / (1 + snr) of the finest bands' power (the
least noisy state's, docs/evaluation.md#the-resolved-band), so they may sit below 1.

usage: python -m infdiff.evaluate.chain --ckpt CKPT [--resolution R] [--n N] [--steps S] [--rows K]"""
import argparse
import math
import sys

import torch

from . import metrics


def chain_band_power(model, diffusion, shape, images, steps, sampler="ddpm", scale=1.0, seed=0, batch=64):
    """{"times": [t', ...] (the state's time after each step, -1 last), "ratio": (S, R//2 + 1) float64}
    for `steps` reverse steps from fresh noise, n = shape[0] samples of shape (n, C, R, R) drawn in
    batches of `batch`. images (M, C, R, R): held-out data at R for P(T x0). model, diffusion,
    scale, sampler: as `MollifiedDiffusion.sample` takes them. Seeded by `seed` (the samples;
    the noise reference uses another stream), so a call is repeatable."""
    metrics._square(images)
    n, c, h, w = shape
    if n < 1 or steps < 1 or batch < 1:
        raise ValueError(f"n (shape[0]), steps and batch must be >= 1, got {n}, {steps}, {batch}")
    if tuple(images.shape[1:]) != (c, h, w):
        raise ValueError(f"images must be (M, {c}, {h}, {w}) like the samples, got {tuple(images.shape)}")
    data_power = metrics.mode_power(diffusion.mollify(images.float()))
    noise_gen = torch.Generator().manual_seed(seed * 100003 + 1)
    noise_power = metrics.mode_power(diffusion.mollify(diffusion.white_noise((max(n, 256), c, h, w), noise_gen)))
    gen = torch.Generator().manual_seed(seed)
    times, sums = [], []  # per visited time, over all batches
    step = 0  # the visit within the current batch's chain

    def post_step(x, t):
        nonlocal step
        if step == len(sums):  # the first batch visits each time first
            times.append(int(t))
            sums.append(torch.zeros(h, w, dtype=torch.float64))
        sums[step] += x.shape[0] * metrics.mode_power(x)
        step += 1
        return x

    for start in range(0, n, batch):
        step = 0
        b = min(batch, n - start)
        diffusion.sample(model, (b, c, h, w), steps=steps, sampler=sampler, generator=gen, scale=scale,
                         post_step=post_step)
    ratio = []
    for t, total in zip(times, sums):
        a = float(diffusion.alpha_bar[t]) if t >= 0 else 1.0
        expected = metrics.radial_average(a * data_power + (1 - a) * noise_power)
        ratio.append(metrics.radial_average(total / n) / expected)
    return {"times": times, "ratio": torch.stack(ratio)}


def table(result, resolution, top, rows=12):
    """The ratios as text: about `rows` visited times, spaced evenly in log(t + 2) so the last
    steps, where the finest bands are decided, get as many rows as the first; bands 1 .. top."""
    times = result["times"]
    picks = sorted({min(range(len(times)), key=lambda i: abs(math.log(times[i] + 2) - v))
                    for v in torch.linspace(math.log(times[0] + 2), math.log(1), rows).tolist()})
    lines = [f"{resolution} px: power of the reverse chain's state over the forward process's at the same t, per band",
             "    t  " + " ".join(f"{k:>5d}" for k in range(1, top + 1))]
    for i in picks:
        lines.append(f"{times[i]:5d}  " + " ".join(f"{float(result['ratio'][i, k]):5.2f}" for k in range(1, top + 1)))
    return "\n".join(lines)


def main(argv=None):
    from ..config import GRF_DATASETS
    from ..family import sample_defaults
    from .denoiser import plain_mollified_sampler
    from .run import _reference

    p = argparse.ArgumentParser(prog="python -m infdiff.evaluate.chain", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--resolution", type=int, default=None, help="default: the training resolution")
    p.add_argument("--n", type=int, default=64, help="samples drawn")
    p.add_argument("--n-ref", type=int, default=1000, help="test images for P(T x0) (at most the split's size)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the config's sample_steps)")
    p.add_argument("--rows", type=int, default=12, help="visited times printed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="diffusion.FIELD=VALUE",
                   help="sample with another setting than the checkpoint's, as `infdiff eval --set`")
    args = p.parse_args(argv)
    for name in ("n", "n_ref", "rows"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    sampler = plain_mollified_sampler(p, args.ckpt, args.set, "the chain's band powers")
    cfg = sampler.cfg
    res = args.resolution or cfg.data.resolution
    if res < cfg.model.kernel_size:
        p.error(f"--resolution must be >= the model's kernel size {cfg.model.kernel_size}, got {res}")
    default_steps, default_sampler = sample_defaults(cfg)
    images = _reference(cfg, args.n_ref, args.seed)[0]
    upsample = "fourier" if cfg.data.name in GRF_DATASETS else "bicubic"  # as `infdiff eval` resamples
    images = metrics.to_resolution(images, res, upsample)
    result = chain_band_power(sampler.model, sampler.diffusion, (args.n, cfg.data.channels, res, res), images,
                              args.steps or default_steps, default_sampler, res / cfg.data.resolution, args.seed)
    print(table(result, res, min(res, cfg.data.resolution) // 2 - 1, args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
