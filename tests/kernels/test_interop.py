"""DLPack interop: NumPy (and CuPy on GPUs) arrays in, the caller's array type out."""
import importlib.util

import numpy as np
import pytest
import torch

import infdiff_kernels as ik
from infdiff_kernels import interop

from .cases import random_points


def _numpy_case():
    rng = np.random.default_rng(0)
    coords = random_points(2, (8, 7), 20, generator=torch.Generator().manual_seed(0)).numpy()
    x = rng.standard_normal((2, 20, 4)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3)).astype(np.float32)
    return x, coords, weight


def test_numpy_in_numpy_out():
    x, coords, weight = _numpy_case()
    out = ik.sparse_depthwise_conv(x, coords, (8, 7), weight)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == x.shape
    expected = ik.sparse_depthwise_conv(torch.from_numpy(x), torch.from_numpy(coords), (8, 7), torch.from_numpy(weight))
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-6, atol=1e-6)


def test_numpy_inputs_are_not_copied_and_results_share_memory():
    x, _, _ = _numpy_case()
    t, kind = interop.to_torch(x)
    assert kind is np.ndarray and t.data_ptr() == x.__array_interface__["data"][0]
    back = interop.from_torch(t, kind)
    assert isinstance(back, np.ndarray) and back.__array_interface__["data"][0] == t.data_ptr()


def test_read_only_numpy_array_is_accepted():
    x, coords, weight = _numpy_case()
    x.setflags(write=False)
    out = ik.sparse_depthwise_conv(x, coords, (8, 7), weight)
    assert isinstance(out, np.ndarray)


def test_mixed_numpy_and_torch_follows_first_foreign_array():
    x, coords, weight = _numpy_case()
    out = ik.sparse_depthwise_conv(torch.from_numpy(x), coords, (8, 7), torch.from_numpy(weight))
    assert isinstance(out, np.ndarray)
    out_t = ik.resample_kernel(torch.from_numpy(weight), 2.0)
    assert isinstance(out_t, torch.Tensor)
    assert isinstance(ik.resample_kernel(weight, 2.0), np.ndarray)


def test_numpy_errors_name_the_argument():
    x, coords, weight = _numpy_case()
    with pytest.raises(ValueError, match="weight"):
        ik.sparse_depthwise_conv(x, coords, (8, 7), weight[:, :2, :2])


@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("cupy") is None,
    reason="needs a CUDA device and cupy (pip install 'infdiff[cupy]'); the NumPy twin above runs the same path on CPU",
)
def test_cupy_in_cupy_out():
    import cupy

    x, coords, weight = (cupy.asarray(a) for a in _numpy_case())
    out = ik.sparse_depthwise_conv(x, coords, (8, 7), weight)
    assert isinstance(out, cupy.ndarray) and out.shape == x.shape
