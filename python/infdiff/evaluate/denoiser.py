"""Where in frequency and time a mollified-family denoiser errs (docs/evaluation.md#denoiser-band-errors).

For held-out images x0 on a full R x R grid and a time t, the network's noise prediction
f(x_t, t) is compared with the mollified noise T xi it is trained to predict, band by band:

    err_k(t) = P_k(f - T xi) / P_k(T xi)          (radially averaged power, fft2 norm "forward")
    snr_k(t) = abar_t P_k(T x0) / ((1 - abar_t) P_k(T xi))

For a Gaussian law (a GRF), the best possible predictor, the posterior mean, has err = snr / (1 + snr)
in each mode; `floor` is that figure per band (each mode's, from the images' own per-mode power,
weighted by the mode's share of the band's noise power). Two readings follow:
- err_k near 1 where snr_k is large is expected: the noise is hidden under the data there;
- err_k above its floor where snr_k is small is the network failing to see noise that is plainly
  there, and err_k > 1 is worse than predicting 0. The sampler leaves such noise in its samples
  and the Wiener decoder amplifies it by up to 1 / sqrt(nsr).

usage: python -m infdiff.evaluate.denoiser --ckpt CKPT [--resolution R ...] [--times T ...] [--n N]"""
import argparse
import sys

import torch

from . import metrics

DEFAULT_TIMES = (0, 10, 30, 100, 300)


def band_errors(model, diffusion, images, times=DEFAULT_TIMES, scale=1.0, seed=0, batch=64):
    """{"times": [t, ...], "err": (T, R//2 + 1) float64, "snr": (T, R//2 + 1), "floor": (T, R//2 + 1)}
    for images (N, C, R, R) in [-1, 1] on the full grid. model: a mollified-family network
    f(points (B, N, C), coords (B, N, 2), size, t (B,), scale=) -> (B, N, C); diffusion its
    MollifiedDiffusion; scale: R / the training resolution. Noise is drawn from `seed` (one
    draw per time, shared by every batch split), so a call is repeatable."""
    metrics._square(images)
    bad = [t for t in times if not 0 <= int(t) < diffusion.steps]
    if bad or not times:
        raise ValueError(f"times must be integers in [0, {diffusion.steps}) (diffusion.steps), got {list(times)}")
    n, _, h, w = images.shape
    x0 = images.float()
    data_power = metrics.mode_power(diffusion.mollify(x0))  # per mode: the floor is per mode, then averaged
    rows = {"err": [], "snr": [], "floor": []}
    for t_int in times:
        gen = torch.Generator().manual_seed(seed * 100003 + int(t_int))
        noise = diffusion.white_noise(x0.shape, gen)
        err_sum, tgt_sum = torch.zeros(h, w, dtype=torch.float64), torch.zeros(h, w, dtype=torch.float64)
        for i in range(0, n, batch):
            xb, nb = x0[i : i + batch], noise[i : i + batch]
            b = xb.shape[0]
            t = torch.full((b,), int(t_int), dtype=torch.long)
            xt, target = diffusion.q_sample(xb, t, nb), diffusion.mollify(nb)
            with torch.no_grad():  # as the samplers call it (diffusion.fine_grid included)
                pred = diffusion.predict_noise(model, xt, t_int, scale).float()
            err_sum += b * metrics.mode_power(pred - target)
            tgt_sum += b * metrics.mode_power(target)
        a = float(diffusion.alpha_bar[int(t_int)])
        tgt = tgt_sum / n
        snr = a * data_power / ((1 - a) * tgt)
        band_tgt = metrics.radial_average(tgt)
        rows["err"].append(metrics.radial_average(err_sum / n) / band_tgt)
        rows["snr"].append(metrics.radial_average(a * data_power) / ((1 - a) * band_tgt))
        # each mode's posterior-mean error, weighted by its share of the band's target power
        rows["floor"].append(metrics.radial_average(snr / (1 + snr) * tgt) / band_tgt)
    return {"times": [int(t) for t in times], **{k: torch.stack(v) for k, v in rows.items()}}


def table(result, resolution, top):
    """The per-band errors as text: one row per time, err (floor) for bands 1 .. top."""
    lines = [f"{resolution} px: relative error of the noise prediction per band (err, and in brackets the "
             "Gaussian floor snr / (1 + snr))",
             "   t  " + " ".join(f"{k:>11d}" for k in range(1, top + 1))]
    for i, t in enumerate(result["times"]):
        cells = " ".join(f"{result['err'][i, k]:5.2f}({result['floor'][i, k]:4.2f})" for k in range(1, top + 1))
        lines.append(f"{t:4d}  {cells}")
    return "\n".join(lines)


def plain_mollified_sampler(parser, ckpt, sets, what):
    """The CPU Sampler of checkpoint `ckpt` with the `--set` overrides `sets`, for a diagnostic
    command of `parser` that measures `what`; parser.error naming --ckpt for an fno-family or a
    diffusion-autoencoder checkpoint (whose denoiser needs a latent z per image)."""
    from ..autoencoder import is_autoencoder
    from ..config import parse_override
    from ..family import is_function_space
    from ..sample import Sampler

    sampler = Sampler.from_checkpoint(ckpt, device="cpu", overrides=dict(parse_override(o) for o in sets or []))
    if is_function_space(sampler.cfg):
        parser.error(f"--ckpt: a model.family fno checkpoint; {what} are defined for the mollified family")
    if is_autoencoder(sampler.cfg):
        parser.error("--ckpt: a diffusion-autoencoder checkpoint (its denoiser needs a latent z per image); "
                     f"{what} are measured for plain models")
    return sampler


def main(argv=None):
    from ..config import GRF_DATASETS
    from .run import _reference

    p = argparse.ArgumentParser(prog="python -m infdiff.evaluate.denoiser", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--resolution", type=int, nargs="+", default=None, help="default: the training resolution")
    p.add_argument("--times", type=int, nargs="+", default=None,
                   help=f"diffusion times (default: those of {list(DEFAULT_TIMES)} below diffusion.steps)")
    p.add_argument("--n", type=int, default=64, help="test images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="diffusion.FIELD=VALUE")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n must be >= 1, got {args.n}")
    sampler = plain_mollified_sampler(p, args.ckpt, args.set, "band errors")
    cfg = sampler.cfg
    steps = cfg.diffusion.steps
    times = args.times if args.times is not None else [t for t in DEFAULT_TIMES if t < steps]
    if any(not 0 <= t < steps for t in times):
        p.error(f"--times must be in [0, {steps}) (the checkpoint's diffusion.steps), got {times}")
    images = _reference(cfg, args.n, args.seed)[0]  # the test subset `infdiff eval` compares with
    upsample = "fourier" if cfg.data.name in GRF_DATASETS else "bicubic"  # as `infdiff eval` resamples
    for res in args.resolution or [cfg.data.resolution]:
        if res < 2:
            p.error(f"--resolution must be >= 2, got {res}")
        x = metrics.to_resolution(images, res, upsample)
        result = band_errors(sampler.model, sampler.diffusion, x, times, res / cfg.data.resolution, args.seed)
        # above the training grid's Nyquist band the data hold nothing and the mollified target
        # falls below 1e-7 of its band-1 power by 2x: a ratio there says little (it stays in `result`)
        print(table(result, res, min(res, cfg.data.resolution) // 2 - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
