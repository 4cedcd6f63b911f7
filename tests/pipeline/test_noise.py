"""The forward-process noise is one function-space measure discretised at each resolution
(docs/noise.md): T xi has the same per-pixel variance and the same low-band power spectrum
at R_train x {1, 2, 4, 8}, and the mollifier's config defaults and limits."""
import math

import numpy as np
import pytest
import scipy.fft
import torch

from infdiff.config import ConfigError, from_dict
from infdiff.diffusion import MollifiedDiffusion, restriction_matrix

R_TRAIN = 16


def _diffusion(sigma="auto", boundary="reflect", noise="function", noise_grid=0):
    cfg = from_dict({"data": {"name": "grf", "resolution": R_TRAIN},
                     "diffusion": {"mollifier_sigma": sigma, "boundary": boundary, "steps": 100, "noise": noise,
                                   "noise_grid": noise_grid},
                     "model": {"kernel_size": 5}})
    return MollifiedDiffusion(cfg)


@pytest.mark.parametrize("sigma_px", [1.0, 2.0])
def test_mollified_noise_variance_is_resolution_independent(sigma_px):
    diff = _diffusion(sigma_px / R_TRAIN)
    g = torch.Generator().manual_seed(0)
    variances = {}
    for factor in (1, 2, 4, 8):
        r = R_TRAIN * factor
        # T xi is correlated over ~sigma, so an image holds ~1 / (4 pi sigma^2) independent
        # values whatever R is (20 at 1 px, 5 at 2 px): 1000 images give a 1.5-3 % estimate
        b = 1000
        variances[r] = diff.noise_like((b, 1, r, r), g).double().var().item()
    ref = variances[R_TRAIN]
    for r, v in variances.items():
        assert abs(v / ref - 1) < 0.05, (r, variances)
    # and it is the continuum limit: var T xi = (1 / R_train^2) * sum over DCT modes of G^2,
    # G = exp(-sigma^2 pi^2 |k|^2 / 2); the modes up to R_train already hold all of it
    sigma = sigma_px / R_TRAIN
    k = np.arange(64)
    g2 = np.exp(-(sigma * math.pi * k) ** 2)
    continuum = g2.sum() ** 2 / R_TRAIN**2
    assert abs(ref / continuum - 1) < 0.05, (ref, continuum)


def test_pixel_noise_shrinks_with_resolution():
    """The failure the function-space noise removes, kept as diffusion.noise = "pixel" for
    the before/after comparison: unit pixel noise makes var T xi fall 4x per doubling of R."""
    g = torch.Generator().manual_seed(1)
    for mode, ratio in (("pixel", 0.25), ("function", 1.0)):
        diff = _diffusion(noise=mode)
        v16, v32 = (diff.noise_like((400, 1, r, r), g).var().item() for r in (16, 32))
        assert v32 / v16 == pytest.approx(ratio, rel=0.08), mode


def test_white_noise_std_and_area_average_consistency():
    diff = _diffusion()
    g = torch.Generator().manual_seed(2)
    assert diff.noise_std((R_TRAIN, R_TRAIN)) == 1.0
    fine = diff.white_noise((256, 1, 2 * R_TRAIN, 2 * R_TRAIN), g)
    assert fine.std().item() == pytest.approx(2.0, rel=0.02)
    # cell averages of the fine grid are cell averages of the same white noise at R_train
    coarse = torch.nn.functional.avg_pool2d(fine, 2)
    assert coarse.std().item() == pytest.approx(1.0, rel=0.02)


def _dct_power(x):
    """Mean |DCT-II coefficient|^2 of x (B, 1, R, R), orthonormal DCT divided by R so that a
    function's coefficient does not depend on the grid (R, R) it is sampled on."""
    c = scipy.fft.dctn(x[:, 0].double().numpy(), axes=(-2, -1), norm="ortho") / x.shape[-1]
    return (c**2).mean(0)


@pytest.mark.parametrize("t", [20, 60, 99])
def test_forward_state_spectrum_matches_over_the_coarse_band(t):
    """x_t at 2R and at R: the same power in every DCT mode resolved at R (signal + noise)."""
    diff = _diffusion()
    g = torch.Generator().manual_seed(3)
    b = 1500
    spectra = {}
    for r in (R_TRAIN, 2 * R_TRAIN):
        centres = (torch.arange(r, dtype=torch.float64) + 0.5) / r
        # a smooth x0 sampled at pixel centres: DCT modes (3, 2) and (1, 0) of [0, 1]^2
        x0 = 0.5 * torch.cos(3 * math.pi * centres)[:, None] * torch.cos(2 * math.pi * centres)[None, :]
        x0 = x0 + 0.3 * torch.cos(math.pi * centres)[:, None]
        x0 = x0.float().expand(b, 1, r, r).contiguous()
        xt = diff.q_sample(x0, torch.full((b,), t), diff.white_noise(x0.shape, g))
        spectra[r] = _dct_power(xt)[:R_TRAIN, :R_TRAIN]
    coarse, fine = spectra[R_TRAIN], spectra[2 * R_TRAIN]
    # the mollifier G falls to 1e-4 by |k| ~ 0.75 R_TRAIN: compare the modes it leaves above
    # 1e-3 of the largest, where the estimate over B draws has ~ sqrt(2 / B) = 4 % error
    keep = coarse > 1e-3 * coarse.max()
    rel = np.abs(fine[keep] / coarse[keep] - 1)
    assert keep.sum() > 20
    assert np.median(rel) < 0.04 and rel.max() < 0.2, (np.median(rel), rel.max())


def test_mollifier_defaults_and_limits():
    cfg = from_dict({"data": {"resolution": 28}})
    assert cfg.diffusion.mollifier_sigma == "auto"
    assert cfg.mollifier_sigma() == pytest.approx(1 / 28)
    assert from_dict({"data": {"resolution": 28}, "diffusion": {"mollifier_sigma": 0}}).mollifier_sigma() == 0
    assert from_dict({"data": {"resolution": 28}, "diffusion": {"mollifier_sigma": "0.05"}}).mollifier_sigma() == 0.05
    with pytest.raises(ConfigError, match=r"diffusion.mollifier_sigma.*0.28 training pixels"):
        from_dict({"data": {"resolution": 28}, "diffusion": {"mollifier_sigma": 0.01}})
    with pytest.raises(ConfigError, match="diffusion.mollifier_sigma"):
        from_dict({"diffusion": {"mollifier_sigma": "wide"}})
    with pytest.raises(ConfigError, match="diffusion.mollifier_sigma"):
        from_dict({"diffusion": {"mollifier_sigma": -0.1}})
    with pytest.raises(ConfigError, match="diffusion.noise"):
        from_dict({"diffusion": {"noise": "white"}})


# ------------------------------------------------------------ one seed, every resolution
@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
@pytest.mark.parametrize("fine,coarse", [(64, 16), (32, 16), (33, 16), (32, 15), (16, 16), (30, 7)])
def test_restriction_keeps_white_noise_white(boundary, fine, coarse):
    """M M^T = (coarse / fine) I: white noise of pixel variance s^2 on the fine grid becomes white
    noise of pixel variance s^2 coarse / fine, the cell average of the same measure (per axis)."""
    m = restriction_matrix(fine, coarse, boundary)
    assert m.shape == (coarse, fine)
    # float64 sums of `fine` products: 1e-12 is roundoff
    torch.testing.assert_close(m @ m.T, torch.eye(coarse, dtype=torch.float64) * coarse / fine, rtol=0, atol=1e-12)
    if fine == coarse:
        assert torch.equal(m, torch.eye(fine, dtype=torch.float64))


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
def test_restriction_samples_a_band_limited_function_at_the_coarse_centres(boundary):
    fine, coarse = 48, 16
    y = (torch.arange(fine, dtype=torch.float64) + 0.5) / fine
    x = (torch.arange(coarse, dtype=torch.float64) + 0.5) / coarse
    if boundary == "periodic":  # modes 0, 3 and 7 < 16 / 2
        f = lambda u: 0.3 + torch.cos(2 * math.pi * 3 * u + 0.4) - 0.5 * torch.sin(2 * math.pi * 7 * u)
    else:  # cosine modes 0, 5 and 15 < 16 (j / 2 cycles)
        f = lambda u: 0.3 + torch.cos(math.pi * 5 * u) + 0.2 * torch.cos(math.pi * 15 * u)
    torch.testing.assert_close(restriction_matrix(fine, coarse, boundary) @ f(y), f(x), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="coarse"):
        restriction_matrix(16, 17, boundary)


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
def test_noise_grid_gives_one_function_at_every_resolution(boundary):
    """diffusion.noise_grid F: the same generator state gives T xi on R <= F that is the F draw's
    restriction (the mollifier is diagonal in the restriction's modes), with the pixel variance of
    the noise drawn on R itself."""
    diff = _diffusion(boundary=boundary, noise_grid=4 * R_TRAIN)
    draws = {r: diff.noise_like((200, 1, r, r), torch.Generator().manual_seed(3)) for r in (16, 32, 64)}
    for r in (16, 32):
        m = restriction_matrix(64, r, boundary).float()
        # float32 noise through two float32 matrix products: 1e-5 of a unit-scale field
        torch.testing.assert_close(m @ draws[64] @ m.T, draws[r], rtol=0, atol=1e-5)
    plain = _diffusion(boundary=boundary)
    g = torch.Generator().manual_seed(4)
    for r in (16, 32, 64):
        # 200 images of ~20 independent values each: a 1.5 % estimate; the restriction drops modes
        # of relative power G^2 <= exp(-pi^2) / 2 at the Nyquist frequency (one training pixel)
        v_grid, v_plain = draws[r].double().var().item(), plain.noise_like((200, 1, r, r), g).double().var().item()
        assert v_grid / v_plain == pytest.approx(1.0, abs=0.06), (r, v_grid, v_plain)


def test_noise_grid_limits_name_the_field():
    with pytest.raises(ConfigError, match=r"diffusion.noise_grid.*data.resolution \(16\)"):
        _diffusion(noise_grid=8)
    with pytest.raises(ConfigError, match=r"diffusion.noise_grid.*diffusion.noise function"):
        from_dict({"data": {"resolution": 16}, "diffusion": {"noise_grid": 32, "noise": "pixel"},
                   "model": {"kernel_size": 5}})
    with pytest.raises(ValueError, match=r"diffusion.noise_grid: the noise is drawn on 32 x 32, coarser than .* 64 x 64"):
        _diffusion(noise_grid=32).noise_like((1, 1, 64, 64))
