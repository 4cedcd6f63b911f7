"""Compatibility shim for the MNIST quality check, which now lives in `infdiff.evaluate`
(docs/evaluation.md; `infdiff eval` reports it together with FD, KID, spectra and patch SWD).
The names the CLI and older code use stay: `LeNet` is the evaluation's feature CNN (99 %
MNIST test accuracy), `load_lenet` shares its cached weights with `infdiff eval`, and
`score` / `format_scores` give the confident share and class entropy as before.

    python -m infdiff.quality --ckpt runs/mnist/checkpoint.pt --n 64 --resolution 28 56"""
import argparse
import math

import torch

from .evaluate import features, metrics

CONFIDENT = features.CONFIDENT
LeNet = features.FeatureCNN  # the classifier's old name


def _mnist(split):
    """(images (N, 1, 28, 28) in [-1, 1], labels (N,)) of MNIST's train or test split."""
    return features.labelled_images("mnist", split)


def train_lenet(log=print, **kwargs):
    """(FeatureCNN, test accuracy) trained on MNIST (features.fit_classifier's recipe)."""
    return features.fit_classifier(*_mnist("train"), *_mnist("test"), log=log, **kwargs)


def load_lenet(cache_dir=None, log=print):
    """The cached MNIST feature CNN, the one `infdiff eval` uses (trained on first use)."""
    return features.load_cached(features.weights_path("mnist", cache_dir), lambda: train_lenet(log=log)[0], log)


@torch.no_grad()
def score(classifier, images):
    """{confident_share, class_entropy, histogram} of images (N, 1, R, R) in [-1, 1], resampled
    to 28 px first (area average for multiples of 28)."""
    return features.classifier_scores(classifier, metrics.to_resolution(images.float(), features.INPUT_RESOLUTION))


def format_scores(resolution, s):
    return (f"{resolution:>4d} px: confident (p >= {CONFIDENT}) {100 * s['confident_share']:5.1f} %, "
            f"class entropy {s['class_entropy']:.3f} / {math.log(10):.3f}, histogram {s['histogram']}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m infdiff.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--resolution", type=int, nargs="+", default=[28, 56])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help=f"classifier weights folder (default {features.cache_dir()})")
    args = p.parse_args(argv)
    from .sample import load_for_sampling, sample_images

    cfg, model, diff = load_for_sampling(args.ckpt)
    classifier = load_lenet(args.cache_dir)
    for res in args.resolution:
        g = torch.Generator().manual_seed(args.seed)
        x = sample_images(model, diff, cfg, args.n, res, steps=args.steps, generator=g)
        print(format_scores(res, score(classifier, x)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
