"""Benchmark of the spectral filters (docs/ops.md#spectral-filters) on B*C = 64 grids, float32.

    python -m bench.spectral                  # 128^2, 256^2, 1024^2 (1024^2: fewer repeats, no scipy/reference)
    python -m bench.spectral --quick          # 128^2 only, few repeats
    python -m bench.spectral --sizes 256 --only-headline   # the three target ratios
    python -m bench.spectral --threads 1 ...                # on a busy shared machine

Every implementation of one size runs side by side (round-robin) in one process; the table
shows time / time of a bare rfft2 + irfft2 round trip of the same tensor ("roundtrip").
Columns:
  mollify:periodic, mollify:reflect  the op (backend=None, i.e. the fastest here)
  q_sample:<b>                        fused a*x0 + s*noise then one filter round trip
  2x mollify:<b>                      mollify(x0) and mollify(noise) separately (the unfused way)
  reference:reflect                   the mirrored 2H x 2W image path (what "reflect" costs naively)
  scipy:reflect                       scipy.ndimage.gaussian_filter(mode="reflect"), truncate=4
  conv2d:reflect                      separable spatial blur: reflect pad + two depthwise conv2d
                                      (1-D Gaussian taps, radius 4 sigma), the usual spatial peer
Sigma is 2 pixels at every size (sigma = 2 / H in domain units).
Headline figures (256^2) go to the JSON under "targets".
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

import infdiff_kernels as ik

from ._common import arg_parser, ratio_table, resolve_device, stat_of, time_side_by_side, write_json

FAMILY = "spectral"
BC = 64
SIGMA_PX = 2.0
FULL_SIZES = (128, 256, 1024)
QUICK_SIZES = (128,)
HEADLINE_SIZE = 256
BIG = 1024  # from here on: fewer repeats, no scipy or mirrored reference (seconds per call)


def gaussian_taps(sigma_px, dtype):
    r = int(math.ceil(4 * sigma_px))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma_px) ** 2)
    return (g / g.sum()).to(dtype), r


def conv2d_blur(x, taps, r):
    """Reflect-padded separable Gaussian blur of x (N, 1, H, W) with depthwise conv2d."""
    y = F.pad(x, (r, r, r, r), mode="reflect")
    y = F.conv2d(y, taps.view(1, 1, -1, 1))
    return F.conv2d(y, taps.view(1, 1, 1, -1))


def implementations(size, headline_only, big, device=torch.device("cpu")):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(BC, size, size, generator=g).to(device)
    noise = torch.randn(BC, size, size, generator=g).to(device)
    sigma = SIGMA_PX / size
    taps, r = gaussian_taps(SIGMA_PX, x0.dtype)
    fns = {
        "roundtrip": lambda: torch.fft.irfft2(torch.fft.rfft2(x0), s=(size, size)),
        "mollify:periodic": lambda: ik.mollify(x0, sigma, "periodic"),
        "mollify:reflect": lambda: ik.mollify(x0, sigma, "reflect"),
        "q_sample:reflect": lambda: ik.q_sample(x0, noise, 0.8, 0.6, sigma, "reflect"),
        "2x mollify:reflect": lambda: (ik.mollify(x0, sigma, "reflect"), ik.mollify(noise, sigma, "reflect")),
    }
    if headline_only:
        return fns
    fns.update({
        "q_sample:periodic": lambda: ik.q_sample(x0, noise, 0.8, 0.6, sigma, "periodic"),
        "2x mollify:periodic": lambda: (ik.mollify(x0, sigma, "periodic"), ik.mollify(noise, sigma, "periodic")),
        "conv2d:reflect": lambda: conv2d_blur(x0[:, None], taps, r),
    })
    if not big and device.type == "cpu":  # scipy runs on host arrays only
        import scipy.ndimage as ndi

        x_np = x0.numpy()
        fns["scipy:reflect"] = lambda: ndi.gaussian_filter(x_np, sigma=(0, SIGMA_PX, SIGMA_PX), mode="reflect")
        fns["reference:reflect"] = lambda: ik.mollify(x0, sigma, "reflect", backend="reference")
    return fns


def main(argv=None):
    parser = arg_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", help="grid sizes (square)")
    parser.add_argument("--only-headline", action="store_true", help="only the columns of the three target ratios")
    parser.add_argument(
        "--threads", type=int, help="torch/OpenMP threads (1 keeps ratios honest on a machine shared with other jobs: "
        "a 2-thread pass there waits for a time slice whenever the other core is taken)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    timings = []
    for size in sizes:
        big = size >= BIG
        repeats = args.repeats or (3 if args.quick or big else 11)
        case = f"{BC}x{size}^2"
        fns = implementations(size, args.only_headline, big, device)
        timings += time_side_by_side(fns, case=case, device=device, repeats=repeats, warmup=1)
        print(f"  {case}: done", flush=True)
    for stat in ("median", "min"):
        print(ratio_table(timings, baseline="roundtrip", title=f"spectral filters, float32, B*C={BC}, sigma=2px", stat=stat))
        print()
    targets = {}
    by_key = {(t.case, t.impl): t for t in timings}
    for size in sizes:
        case = f"{BC}x{size}^2"
        get = lambda impl: stat_of(by_key[(case, impl)]) if (case, impl) in by_key else None  # noqa: E731
        base, per, ref = get("roundtrip"), get("mollify:periodic"), get("mollify:reflect")
        q, two = get("q_sample:reflect"), get("2x mollify:reflect")
        if None in (base, per, ref, q, two):
            continue
        targets[case] = {
            "periodic_mollify_over_roundtrip": per / base,
            "reflect_mollify_over_roundtrip": ref / base,
            "two_mollifies_over_fused_q_sample": two / q,
        }
        mark = "  <- headline" if size == HEADLINE_SIZE else ""
        print(
            f"{case}: periodic mollify {per / base:.3f}x roundtrip (target <= 1.15), reflect mollify "
            f"{ref / base:.3f}x (target <= 2.0), fused q_sample {two / q:.2f}x faster than two mollifies "
            f"(target >= 1.7){mark}"
        )
    path = write_json(FAMILY, timings, args, extra={"targets": targets, "sigma_px": SIGMA_PX, "bc": BC}, device=device)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
