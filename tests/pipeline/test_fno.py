"""The Fourier neural operator (python/infdiff/model/fno.py): spectral convolution against a
direct DFT, exact resolution consistency, gradients, and argument errors."""
import math

import pytest
import torch

from infdiff.model.fno import FourierNeuralOperator, SpectralConv2d, band_limit, evaluate_band


def fourier_upsample(u, size):
    """u (..., h, w), band-limited below its Nyquist frequency, sampled on a finer grid `size` by
    zero-padding its spectrum (the test's own resampler, independent of fno.band_limit)."""
    h, w = u.shape[-2:]
    coeff = torch.fft.fft2(u, norm="forward")
    big = coeff.new_zeros(u.shape[:-2] + size)
    kh, kw = (h - 1) // 2, (w - 1) // 2
    for rows_src, rows_dst in ((slice(0, kh + 1), slice(0, kh + 1)), (slice(h - kh, h), slice(size[0] - kh, size[0]))):
        for cols_src, cols_dst in ((slice(0, kw + 1), slice(0, kw + 1)),
                                   (slice(w - kw, w), slice(size[1] - kw, size[1]))):
            big[..., rows_dst, cols_dst] = coeff[..., rows_src, cols_src]
    return torch.fft.ifft2(big, norm="forward").real


def band_limited_field(shape, generator):
    """Random real field (..., H, W) with no energy at or above the grid's Nyquist frequency."""
    h, w = shape[-2:]
    u = torch.randn(shape, generator=generator, dtype=torch.float64)
    coeff = torch.fft.fft2(u, norm="forward")
    kx = torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64).abs()
    ky = torch.fft.fftfreq(w, d=1.0 / w, dtype=torch.float64).abs()
    keep = (kx[:, None] < h / 2) & (ky[None, :] < w / 2)
    return torch.fft.ifft2(coeff * keep, norm="forward").real


def direct_spectral_conv(v, weight, modes):
    """The spectral convolution written as sums over grid points and modes: v (B, I, G1, G2),
    weight (I, O, 2 modes - 1, modes) complex -> (B, O, G1, G2). The kx layout is band_limit's."""
    g1, g2 = v.shape[-2:]
    x = torch.arange(g1, dtype=torch.float64) / g1
    y = torch.arange(g2, dtype=torch.float64) / g2
    out = torch.zeros(v.shape[0], weight.shape[1], g1, g2, dtype=torch.float64)
    kx_values = list(range(modes)) + list(range(-(modes - 1), 0))
    for ix, kx in enumerate(kx_values):
        for ky in range(modes):
            phase = torch.exp(2j * math.pi * (kx * x[:, None] + ky * y[None, :]))  # (G1, G2)
            c = (v.to(torch.complex128) * phase.conj()).mean(dim=(-2, -1))  # (B, I)
            mixed = c @ weight[:, :, ix, ky]  # (B, O)
            # irfft2 keeps the real part of the ky = 0 column and doubles the others' conjugate pairs
            factor = 1.0 if ky == 0 else 2.0
            out += factor * (mixed[:, :, None, None] * phase).real
    return out


def test_spectral_conv_matches_direct_dft():
    gen = torch.Generator().manual_seed(0)
    conv = SpectralConv2d(2, 3, modes=3).double()
    v = torch.randn(2, 2, 8, 10, generator=gen, dtype=torch.float64)
    expected = direct_spectral_conv(v, torch.view_as_complex(conv.weight.detach()), 3)
    # float64 FFT against float64 direct sums of ~80 terms: rounding is ~1e-15 of values ~1
    torch.testing.assert_close(conv(v), expected, rtol=0, atol=1e-12)


def test_spectral_conv_matches_neuraloperator():
    """Our SpectralConv2d against the SpectralConv of the `neuraloperator` package with the same
    weights. The package is not a dependency: run this test with an interpreter that has it (e.g. a
    throwaway venv with `pip install neuraloperator` on top of this environment)."""
    spectral_convolution = pytest.importorskip(
        "neuralop.layers.spectral_convolution",
        reason="the optional oracle `neuraloperator` is not installed (the direct DFT test covers the same op)")
    modes = 5
    torch.manual_seed(6)
    ours = SpectralConv2d(2, 3, modes)
    # n_modes counts both signs on the first axis (2 modes - 1 centred on 0) and is halved plus
    # one on the rfft axis, so (2 modes - 1, 2 modes - 1) keeps exactly our |kx| < modes, ky < modes
    theirs = spectral_convolution.SpectralConv(2, 3, n_modes=(2 * modes - 1, 2 * modes - 1), bias=False)
    weight = torch.view_as_complex(ours.weight.detach())  # (2, 3, 2 modes - 1, modes), kx = 0.., -(modes-1)..-1
    with torch.no_grad():
        # theirs orders kx from -(modes - 1) to modes - 1 (fftshift order)
        theirs.weight.tensor.copy_(torch.roll(weight, shifts=modes - 1, dims=-2))
    v = torch.randn(2, 2, 16, 12, generator=torch.Generator().manual_seed(6))
    # float32 FFTs on both sides, differing only in summation order: rounding ~1e-7 of values ~1
    torch.testing.assert_close(ours(v), theirs(v), rtol=0, atol=1e-5)


def test_band_limit_round_trip_and_grid_independence():
    gen = torch.Generator().manual_seed(1)
    u = band_limited_field((2, 1, 9, 9), gen)  # odd grid: 4 mode pairs per axis, no Nyquist
    coeff = band_limit(u, 5)
    torch.testing.assert_close(evaluate_band(coeff, (9, 9)), u, rtol=0, atol=1e-12)
    # the same function on a finer grid has the same coefficients
    torch.testing.assert_close(band_limit(fourier_upsample(u, (20, 14)), 5), coeff, rtol=0, atol=1e-12)


@pytest.mark.parametrize("coarse,fine", [((16, 16), (32, 32)), ((12, 10), (36, 20))])
def test_fno_is_resolution_consistent(coarse, fine):
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    model = FourierNeuralOperator(channels=2, width=8, modes=5, depth=2, time_dim=16).double()
    u = band_limited_field((3, 2) + coarse, gen)
    t = torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)
    with torch.no_grad():
        coarse_out = model(u, t)
        fine_out = model(fourier_upsample(u, fine), t)
    assert coarse_out.shape == (3, 2) + coarse and fine_out.shape == (3, 2) + fine
    # Both sides compute the same band-limited function plus the same linear pointwise map; they
    # differ only by float64 FFT rounding (~1e-16 relative, grown by a few transforms and layers)
    torch.testing.assert_close(fine_out, fourier_upsample(coarse_out, fine), rtol=0, atol=1e-10)
    # and the fine output's samples at the coarse points are the coarse output
    if fine[0] % coarse[0] == 0 and fine[1] % coarse[1] == 0:
        step = (fine[0] // coarse[0], fine[1] // coarse[1])
        torch.testing.assert_close(fine_out[..., ::step[0], ::step[1]], coarse_out, rtol=0, atol=1e-10)


def test_fno_float32_consistency():
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = FourierNeuralOperator(channels=1, width=8, modes=4, depth=2, time_dim=16)
    u = band_limited_field((2, 1, 16, 16), gen)
    t = torch.tensor([0.2, 0.8])
    with torch.no_grad():
        fine_out = model(fourier_upsample(u, (32, 32)).float(), t)
        coarse_out = model(u.float(), t)
    # float32 rounding (~6e-8 relative) through a few FFTs and layers on values of order 1
    torch.testing.assert_close(fine_out.double(), fourier_upsample(coarse_out.double(), (32, 32)), rtol=0, atol=2e-5)


def test_fno_gradients_reach_every_parameter():
    torch.manual_seed(4)
    model = FourierNeuralOperator(channels=1, width=4, modes=3, depth=2, time_dim=8)
    u = torch.randn(2, 1, 12, 12, requires_grad=True)
    model(u, torch.tensor([0.1, 0.9])).pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert u.grad.abs().sum() > 0


def test_fno_time_conditioning_changes_output():
    torch.manual_seed(5)
    model = FourierNeuralOperator(channels=1, width=4, modes=3, depth=1, time_dim=8)
    u = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        a, b = model(u, torch.tensor([0.1])), model(u, torch.tensor([0.9]))
    assert (a - b).abs().max() > 1e-4


@pytest.mark.parametrize("kwargs,name", [
    ({"modes": 0}, "modes"), ({"width": 0}, "width"), ({"depth": 0}, "depth"), ({"channels": 0}, "channels"),
    ({"modes": 4, "grid": 6}, "grid"), ({"time_dim": 7}, "time_dim"), ({"modes": 2.5}, "modes"),
])
def test_fno_constructor_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FourierNeuralOperator(**kwargs)


def test_fno_unknown_options_are_named():
    with pytest.raises(ValueError, match="kernel_size"):
        FourierNeuralOperator.from_options({"modes": 4, "kernel_size": 3})
    assert FourierNeuralOperator.from_options({"modes": 4, "width": 4}).grid == 8


def test_fno_forward_errors_name_the_argument():
    model = FourierNeuralOperator(channels=1, width=4, modes=3, depth=1, time_dim=8)
    with pytest.raises(ValueError, match="u must"):
        model(torch.randn(1, 2, 8, 8), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="t must"):
        model(torch.randn(2, 1, 8, 8), torch.tensor([0.5]))
