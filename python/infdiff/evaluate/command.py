"""The `infdiff eval` command: `register(subparsers)` adds it to an argparse parser, whose
`func` (`cmd_eval`) runs `evaluate_checkpoint` and returns 0."""
from ..device import DEVICE_NAMES
from .run import DEFAULT_BATCH, evaluate_checkpoint

HELP = "score samples at several resolutions against held-out data (FD, KID, classifier, spectrum, patch SWD)"


def register(subparsers):
    """Add `eval` to `subparsers` (from ArgumentParser.add_subparsers); returns its parser."""
    p = subparsers.add_parser("eval", help=HELP, description=HELP + ". See docs/evaluation.md.")
    p.add_argument("--ckpt", required=True, help="training checkpoint (its config names the dataset)")
    p.add_argument("--resolution", type=int, nargs="+", default=None,
                   help="resolutions to sample at (default: 1x, 2x and 4x the training resolution)")
    p.add_argument("--n", type=int, default=1000, help="samples per resolution (and test images compared)")
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
    p.add_argument("--device", choices=DEVICE_NAMES, default="auto",
                   help="where the model samples (default auto: CUDA when torch sees a GPU); the metrics run on the CPU")
    p.set_defaults(func=cmd_eval)
    return p


def cmd_eval(args):
    from ..config import parse_override

    overrides = dict(parse_override(o) for o in args.set or [])
    evaluate_checkpoint(args.ckpt, args.resolution, args.n, steps=args.steps, seed=args.seed, out_dir=args.out,
                        batch=args.batch, cache_dir=args.cache_dir, overrides=overrides,
                        device=args.device)
    return 0
