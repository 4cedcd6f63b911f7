"""The `infdiff eval` command: `register(subparsers)` adds it to an argparse parser, whose
`func` (`cmd_eval`) runs `evaluate_checkpoint` (or, given --samples, `evaluate_kept_samples`)
and returns 0."""
from ..device import DEVICE_NAMES
from .run import DEFAULT_BATCH, SAMPLES_FILE, evaluate_checkpoint, evaluate_kept_samples

DEFAULT_N = 1000

HELP = "score samples at several resolutions against held-out data (FD, KID, classifier, spectrum, patch SWD)"


def register(subparsers):
    """Add `eval` to `subparsers` (from ArgumentParser.add_subparsers); returns its parser."""
    p = subparsers.add_parser("eval", help=HELP, description=HELP + ". See docs/evaluation.md.")
    p.add_argument("--ckpt", required=True, help="training checkpoint (its config names the dataset)")
    p.add_argument("--resolution", type=int, nargs="+", default=None,
                   help="resolutions to sample at (default: 1x, 2x and 4x the training resolution)")
    p.add_argument("--n", type=int, default=None, help=f"samples per resolution (and test images compared; default {DEFAULT_N})")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the config's sample_steps)")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler, the test subset, KID subsets and SWD")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="samples drawn per sampler call")
    p.add_argument("--out", default=None, help="output folder (default: <checkpoint folder>/eval)")
    p.add_argument("--cache-dir", default=None,
                   help="feature CNN weights folder (default: $INFDIFF_CACHE, else ~/.cache/infdiff)")
    p.add_argument("--set", action="append", metavar="diffusion.FIELD=VALUE",
                   help="sample with another setting than the checkpoint's: diffusion.wiener_nsr, diffusion.noise, "
                        "diffusion.noise_grid (default with several resolutions: the finest, one function per seed; "
                        "0: each resolution drawn apart), diffusion.sampler, diffusion.sample_steps, "
                        "function_space.sampler or function_space.sample_steps")
    p.add_argument("--samples", nargs="+", default=None, metavar="NPZ",
                   help=f"score these kept samples as one set instead of sampling: {SAMPLES_FILE} files of earlier "
                        "evaluations (e.g. one per seed) or of `infdiff sample --format npz`, all at the same resolutions")
    p.add_argument("--device", choices=DEVICE_NAMES, default="auto",
                   help="where the model samples (default auto: CUDA when torch sees a GPU); the metrics run on the CPU")
    p.set_defaults(func=cmd_eval)
    return p


def cmd_eval(args):
    from ..config import parse_override

    overrides = dict(parse_override(o) for o in args.set or [])
    if args.samples:
        given = [name for name, value in (("--resolution", args.resolution), ("--n", args.n), ("--steps", args.steps))
                 if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: not with --samples, whose files fix the resolutions and samples")
        evaluate_kept_samples(args.ckpt, args.samples, seed=args.seed, out_dir=args.out, cache_dir=args.cache_dir,
                              overrides=overrides)
        return 0
    evaluate_checkpoint(args.ckpt, args.resolution, DEFAULT_N if args.n is None else args.n, steps=args.steps,
                        seed=args.seed, out_dir=args.out, batch=args.batch, cache_dir=args.cache_dir,
                        overrides=overrides, device=args.device)
    return 0
