"""`evaluate_checkpoint` (sample a checkpoint at several resolutions, then score) and
`evaluate_samples` (score samples already drawn): every metric of `metrics.py`, `grf.py` and
`features.py`, at each resolution R in two comparisons with the held-out (test) split of the
checkpoint's dataset:

- "train-res": samples resampled to the training resolution (area average) vs the test data
  at the training resolution;
- "native": samples at R vs the test data resampled to R (Fourier zero-padding for the
  spectrum and for periodic GRF data, bicubic for the patches of image data; see docs/evaluation.md).

FD, KID and the classifier scores need the feature CNN, which sees 28 px images, so they are
train-res only, and only for labelled datasets (MNIST, Fashion-MNIST). GRF datasets are
compared with their known law as well. Results go to `out_dir` (eval.json, report.md, PNGs;
`evaluate_checkpoint` also keeps the samples it drew, samples.npz)."""
import dataclasses
import os
import time

import torch

from ..config import GRF_DATASETS
from ..family import is_function_space, noise_grid
from ..images import load_npz, save_npz
from . import features, grf, metrics, microstructure, report

DEFAULT_BATCH = 64
SAMPLES_FILE = "samples.npz"  # the raw samples evaluate_checkpoint scored, one float32 array per R


def _reference(cfg, n, seed):
    """(M, C, R_train, R_train) test images in [-1, 1], M = min(n, split size), a seeded random
    subset; and a disjoint subset of the same size when the split has room (the data-vs-data
    floor of every metric at this n), else None."""
    from ..data import build_dataset

    ds = build_dataset(dataclasses.replace(cfg.data, split="test", limit=0))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed)).tolist()
    m = min(n, len(ds))
    ref = torch.stack([ds[i] for i in order[:m]])
    floor = torch.stack([ds[i] for i in order[m : 2 * m]]) if len(ds) >= 2 * m and m >= 2 else None
    return ref, floor


def _check_samples(samples_by_resolution, cfg):
    if not samples_by_resolution:
        raise ValueError("samples_by_resolution: no resolutions given")
    for res, x in samples_by_resolution.items():
        if not torch.is_tensor(x) or x.dim() != 4 or tuple(x.shape[1:]) != (cfg.data.channels, res, res):
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"samples_by_resolution[{res}] must be (n, {cfg.data.channels}, {res}, {res}), got {shape}")
        if x.shape[0] < 2:
            raise ValueError(f"samples_by_resolution[{res}]: need n >= 2 samples, got {x.shape[0]}")
        if not torch.isfinite(x).all():
            raise ValueError(f"samples_by_resolution[{res}] holds NaN or inf")


def _cnn_view(x):  # (N, C, R, R) -> (N, 1, 28, 28): what the feature CNN takes
    if x.shape[1] != 1:  # a 3-channel config of a grey dataset: its channels are copies
        x = x.mean(1, keepdim=True)
    return metrics.to_resolution(x, features.INPUT_RESOLUTION)


def _compare(x, y, top_band, seed, classifier=None):
    """Metrics of samples x (N, C, R, R) vs reference y (M, C, R, R) at one resolution: spectrum
    error over bands 1..top_band and patch SWD; with the feature CNN `classifier`, also FD, KID
    and the classifier scores of x. Returns (figures, spectra for the plots)."""
    out = {}
    if classifier is not None:
        cx, cy = _cnn_view(x), _cnn_view(y)
        out["fd"], out["kid"], out["kid_std"] = metrics.frechet_kid(features.CNNFeatures(classifier), cy, cx, seed=seed)
        out.update(features.classifier_scores(classifier, cx))
    ps, pd = metrics.radial_power_spectrum(x), metrics.radial_power_spectrum(y)
    rel, out["spectrum_err"] = metrics.spectrum_error(ps, pd, top_band)
    out["swd"] = metrics.patch_swd(x, y, seed=seed)
    return out, {"samples": ps, "data": pd, "rel_err": rel}


def evaluate_samples(samples_by_resolution, cfg, out_dir, seed=0, cache_dir=None, n_ref=None, log=print,
                     meta=None, grid_n=64):
    """Score samples {R: (n, C, R, R) in [-1, 1]} of a model trained with config `cfg` against the
    test split of its dataset; write eval.json, report.md and PNGs to out_dir, print a table
    with `log`, and return the results (the content of eval.json). n_ref: test images compared
    (default: the largest n). meta: extra fields for the report (checkpoint, steps, ...)."""
    _check_samples(samples_by_resolution, cfg)
    start = time.time()
    train_res, name = cfg.data.resolution, cfg.data.name
    resolutions = sorted(samples_by_resolution)
    ref, floor = _reference(cfg, n_ref or max(x.shape[0] for x in samples_by_resolution.values()), seed)
    is_grf, is_mixture = name in GRF_DATASETS, name == "grf_mixture"
    notes, classifier = [], None
    if name in features.LABELLED:
        classifier = features.load_classifier(name, cache_dir, cfg.data.path, log=log)
        notes.append(f"FD, KID and the classifier scores are train-res only: the feature CNN sees "
                     f"{features.INPUT_RESOLUTION} px images, so at R it would measure its own scale mismatch")
        if train_res != features.INPUT_RESOLUTION:
            notes.append(f"FD, KID and the classifier scores resample the {train_res} px images to "
                         f"{features.INPUT_RESOLUTION} px for the feature CNN")
    else:
        notes.append(f"dataset {name!r} has no class labels, so there is no feature CNN: FD, KID, classifier "
                     "confidence and class entropy are skipped; spectrum and patch SWD are reported")
    is_micro = name in microstructure.DATASETS
    if is_micro:
        notes.append(f"microstructure: images thresholded at {microstructure.THRESHOLD} into two phases; two-point "
                     "correlation S2 (periodic FFT) and per-image volume fractions, native only, vs the data "
                     "resampled to R (bicubic) and then thresholded")
    if is_grf:
        resolved = grf.resolved_top_band(cfg)
        notes.append("GRF data: the native spectra are also compared with the known law's (analytic) spectrum, "
                     f"over bands 1..R/2 - 1 at each resolution R (law err) and over the resolved band 1..{resolved} "
                     "(law err resolved; a mixture's law weighted by the shares assigned to each component)")
    # pixels of the native reference: Fourier for periodic band-limited GRFs (exact), bicubic
    # for images (Fourier rings at MNIST's sharp strokes, up to |x| = 1.8)
    upsample = "fourier" if is_grf else "bicubic"
    results = {
        "dataset": name, "train_resolution": train_res, "resolutions": resolutions,
        "n": {str(r): int(samples_by_resolution[r].shape[0]) for r in resolutions}, "n_reference": int(ref.shape[0]),
        "seed": seed, "upsample": upsample, **(meta or {}), "notes": notes,
        "data": {}, "train_res": {}, "native": {}, "spectra": {},
    }
    if is_grf:
        results["resolved_band"] = resolved
    if is_micro:
        results["microstructure"] = {}
    top_train = train_res // 2 - 1  # bands below the Nyquist band, whose ring the square grid cuts
    # the data's own figures at this n (a disjoint test subset vs the reference): what a perfect model gets
    if floor is not None:
        results["data"] = _compare(floor, ref, top_train, seed, classifier)[0]
    elif classifier is not None:
        results["data"] = features.classifier_scores(classifier, _cnn_view(ref))
    if is_grf:
        results["data"]["law_spectrum_err"] = metrics.spectrum_error(
            metrics.radial_power_spectrum(ref), grf.law_spectrum(cfg.data, train_res), top_train)[1]
    data_share = (grf.assign_components(ref, cfg.data) == 0).double().mean().item() if is_mixture else None

    references, picks, sample_spectra = {}, {}, {}
    for res in resolutions:
        x, key = samples_by_resolution[res].float(), str(res)
        # train-res: the sample as the training grid sees it (cell averages) vs the data there
        results["train_res"][key], spec_train = _compare(metrics.to_resolution(x, train_res), ref, top_train, seed,
                                                         classifier)
        # native: the sample at R vs the data resampled to R
        references[res] = metrics.to_resolution(ref, res, upsample)
        native = {"swd": metrics.patch_swd(x, references[res], seed=seed)}
        ps = metrics.radial_power_spectrum(x)
        # the spectrum's reference is Fourier-resampled for every dataset: zero-padding keeps
        # each resolved coefficient of the data, so no interpolation filter attenuates it
        pd = metrics.radial_power_spectrum(metrics.to_resolution(ref, res, "fourier"))
        pd[min(res, train_res) // 2 + 1 :] = float("nan")  # zero-padded bands: the data carry nothing there
        top = min(res, train_res) // 2 - 1
        rel, native["spectrum_err"] = metrics.spectrum_error(ps, pd, top)
        spec_native = {"samples": ps, "data": pd, "rel_err": rel}
        if floor is not None:
            native["swd_data"] = metrics.patch_swd(metrics.to_resolution(floor, res, upsample), references[res], seed=seed)
            native["spectrum_err_data"] = metrics.spectrum_error(
                metrics.radial_power_spectrum(metrics.to_resolution(floor, res, "fourier")), pd, top)[1]
        # each sample's more likely mixture component, read by the resolved-band error and _mixture
        pick = grf.assign_components(x, cfg.data) if is_mixture else None
        picks[res], sample_spectra[res] = pick, ps
        if is_grf:
            law = grf.law_spectrum(cfg.data, res)
            law_rel, native["law_spectrum_err"] = metrics.spectrum_error(ps, law, res // 2 - 1)
            # the law's own draws at R, as many as the samples: the error a perfect model gets
            draws = grf.law_draws(cfg.data, x.shape[0], res, seed=seed)[0]
            pd_law = metrics.radial_power_spectrum(draws)
            native["law_spectrum_err_data"] = metrics.spectrum_error(pd_law, law, res // 2 - 1)[1]
            native["law_spectrum_err_resolved"] = _resolved_error(ps, pick, cfg, res, resolved)
            if is_mixture:  # against the configured weights: a mode imbalance shows here, not above
                native["law_spectrum_err_resolved_configured"] = _resolved_error(ps, None, cfg, res, resolved)
            if resolved >= 1 and not is_function_space(cfg):  # the fno family has no mollifier and no decoder
                native["law_spectrum_err_resolved_perfect"] = metrics.spectrum_error(
                    grf.perfect_sampler_spectrum(cfg, res), grf.law_spectrum(cfg.data, res), resolved)[1]
            draws_pick = grf.assign_components(draws, cfg.data) if is_mixture else None
            native["law_spectrum_err_resolved_data"] = _resolved_error(pd_law, draws_pick, cfg, res, resolved)
            spec_native.update({"law": law, "law_rel_err": law_rel})
        if is_micro:
            figures, curves = microstructure.compare(x, references[res])
            native.update(figures)
            if floor is not None:
                floor_figures = microstructure.compare(metrics.to_resolution(floor, res, upsample), references[res])[0]
                native.update({k + "_data": v for k, v in floor_figures.items()})
            results["microstructure"][key] = {k: metrics.summary(v) for k, v in curves.items()}
        if is_mixture:
            native["mixture"] = {**_mixture(x, pick, cfg, res, resolved), "component1_share_data": data_share}
        results["native"][key] = native
        results["spectra"][key] = {mode: {k: metrics.summary(v) for k, v in spec.items()}
                                   for mode, spec in (("train_res", spec_train), ("native", spec_native))}
    grid = noise_grid(cfg)
    if grid and len(resolutions) > 1:
        coarse = resolutions[0]
        notes.append(f"diffusion.noise_grid {grid}: every resolution's noise is one draw on {grid} x "
                     f"{grid}, so sample i is one function at every R; 'same function' is the mean over i of "
                     f"|| sample at R restricted to {coarse} px - sample at {coarse} px || / || sample at {coarse} px || "
                     "(docs/noise.md#one-seed-every-resolution)")
        if is_mixture:
            notes.append(f"diffusion.noise_grid: 'law err resolved, coarsest's components' weights the law at every R "
                         f"by the components assigned at {coarse} px, one label per function (a borderline sample "
                         "can be assigned differently at each R)")
        for res in resolutions[1:]:
            native = results["native"][str(res)]
            diff = metrics.same_function_difference(samples_by_resolution[res].float(),
                                                    samples_by_resolution[coarse].float(), cfg.diffusion.boundary)
            # the mean and its tail: a sampler can keep most functions and send a few elsewhere
            native.update(same_function_rel_l2=float(diff.mean()), same_function_rel_l2_median=float(diff.median()),
                          same_function_rel_l2_max=float(diff.max()))
            if is_mixture:
                native["law_spectrum_err_resolved_paired"] = _resolved_error(sample_spectra[res], picks[coarse], cfg,
                                                                             res, resolved)
                native["mixture"]["component_changes"] = int((picks[res] != picks[coarse]).sum())
    results["seconds"] = round(time.time() - start, 1)
    report.write(results, samples_by_resolution, references, out_dir, grid_n=grid_n)
    log(report.table(results))
    log(f"report: {os.path.join(os.path.abspath(out_dir), 'report.md')}")
    return results


def _resolved_error(spectrum, pick, cfg, res, top):
    """Mean relative error of `spectrum` (of a set of images at res) vs the law over bands 1..top
    (None when top is 0). pick: for a mixture, the component assigned to each image (N,)
    (`grf.assign_components`), else None. A mixture's law is weighted by those shares: that a
    set of n images holds the configured share only up to binomial noise (~4.5 % of the power
    in the bands of the rougher component at n = 500) is the component share's figure, not the
    spectrum's."""
    if top < 1:
        return None
    weights = None
    if pick is not None:
        share = (pick == 0).double().mean().item()
        weights = (share, 1.0 - share)
    return metrics.spectrum_error(spectrum, grf.law_spectrum(cfg.data, res, weights=weights), top)[1]


def _mixture(x, pick, cfg, res, top):
    """Per-component figures of GRF-mixture samples x (N, 1, R, R) assigned to components
    `pick` (N,): share assigned to component 1 (vs the configured weight) and each component's
    spectrum error vs its own law over the resolved band 1..top (None when top is 0). Not over
    every band: the smooth component's law has ~1e-10 of the noise's power in the top bands, so
    its all-band error read 2e5 % for any sampler."""
    out = {"component1_share": (pick == 0).double().mean().item(), "component1_weight": cfg.data.grf_mixture_weight}
    for j in range(2):
        xs = x[pick == j]
        err = None
        if xs.shape[0] >= 2 and top >= 1:
            law = grf.law_spectrum(cfg.data, res, j)
            err = metrics.spectrum_error(metrics.radial_power_spectrum(xs), law, top)[1]
        out[f"component{j + 1}_spectrum_err_resolved"] = err
        out[f"component{j + 1}_n"] = int(xs.shape[0])
    return out


def check_arguments(n, resolutions, steps=None, batch=DEFAULT_BATCH):
    """ValueError naming the argument (Python name and CLI flag) for a bad n, resolution list,
    steps or batch. The kernel-size bound on resolutions needs the checkpoint (evaluate_checkpoint)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n (--n) must be an integer >= 2 (FD and KID need two samples), got {n!r}")
    if resolutions is not None and not resolutions:
        raise ValueError("resolutions (--resolution) must list at least one resolution")
    for r in resolutions or []:
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"resolutions (--resolution) must be positive integers, got {r!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps (--steps) must be an integer >= 1 (or None for the config's), got {steps!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch (--batch) must be an integer >= 1, got {batch!r}")


def resolutions_to_evaluate(cfg, resolutions):
    """The sorted distinct resolutions an evaluation of a model of config `cfg` samples at:
    `resolutions`, or by default 1x, 2x and 4x its training resolution (data.resolution)."""
    return sorted(set(resolutions or [cfg.data.resolution * f for f in (1, 2, 4)]))


def evaluate_checkpoint(ckpt_path, resolutions, n, steps=None, seed=0, out_dir=None, batch=DEFAULT_BATCH,
                        cache_dir=None, log=print, overrides=None, device="auto"):
    """Sample n images at each resolution (None: 1x, 2x and 4x the training resolution) from the
    checkpoint's EMA model (DDIM/DDPM with `steps` steps, default the config's; generator
    seeded with `seed` at each resolution; several resolutions are drawn from one noise per seed,
    `Sampler.with_one_noise`, unless overrides set diffusion.noise_grid), then `evaluate_samples`
    them into out_dir (default: <checkpoint folder>/eval). overrides: sampling settings that differ from the
    checkpoint's config (`infdiff.sample.SAMPLING_FIELDS`). device: where the model samples
    ("auto": CUDA when present); the metrics run on the CPU. Returns the results."""
    from ..family import is_function_space, sample_defaults
    from ..sample import Sampler

    check_arguments(n, resolutions, steps, batch)
    if not os.path.isfile(ckpt_path):
        raise ValueError(f"ckpt_path (--ckpt): checkpoint not found: {ckpt_path}")
    sampler = Sampler.from_checkpoint(ckpt_path, device, overrides=overrides, log=log)
    cfg = sampler.cfg
    resolutions = resolutions_to_evaluate(cfg, resolutions)
    sampler = sampler.with_one_noise(resolutions, overrides, log=log)
    cfg = sampler.cfg
    # the sparse kernels need that many pixels; the fno family has no such bound
    small = [] if is_function_space(cfg) else [r for r in resolutions if r < cfg.model.kernel_size]
    if small:
        raise ValueError(f"resolutions (--resolution): {small} below the model's kernel size "
                         f"{cfg.model.kernel_size} (model.kernel_size of the checkpoint)")
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), "eval")
    # data and the feature CNN first: a missing dataset fails before minutes of sampling
    _reference(cfg, 2, seed)
    if cfg.data.name in features.LABELLED:
        features.load_classifier(cfg.data.name, cache_dir, cfg.data.path, log=log)
    samples, timing = {}, {}
    os.makedirs(out_dir, exist_ok=True)
    for res in resolutions:
        t = time.time()
        samples[res] = sampler.sample(n, res, steps=steps, generator=sampler.generator(seed), batch=batch)
        timing[str(res)] = round(time.time() - t, 1)
        # rewritten after each resolution: an evaluation stopped at 4x keeps the samples already drawn
        save_npz(samples, os.path.join(out_dir, SAMPLES_FILE), noise_grid=noise_grid(cfg))
        log(f"sampled {n} at {res} px in {timing[str(res)]:.0f} s (saved to {SAMPLES_FILE})")
    default_steps, default_sampler = sample_defaults(cfg)
    meta = {"checkpoint": os.path.abspath(ckpt_path), "steps": steps or default_steps, "family": cfg.model.family,
            "sampler": default_sampler, "overrides": dict(overrides or {}), "sampling_seconds": timing,
            "samples_file": SAMPLES_FILE}
    if is_function_space(cfg):  # the diffusion section's Wiener ratio and noise do not apply
        meta["noise"] = cfg.function_space.noise
    else:
        # every setting the draw depends on: a checkpoint samples with the config it was trained with,
        # which may predate the preset's current sampler
        d = cfg.diffusion
        meta.update(wiener_nsr=d.wiener_nsr, noise=d.noise, noise_grid=d.noise_grid, fine_grid=d.fine_grid)
        if d.sampler == "ddpm":
            meta["ddpm_variance"] = d.ddpm_variance
    return evaluate_samples(samples, cfg, out_dir, seed=seed, cache_dir=cache_dir, log=log, meta=meta)


def evaluate_kept_samples(ckpt_path, sample_files, seed=0, out_dir=None, cache_dir=None, log=print, overrides=None):
    """Score the samples of several `samples.npz` files (from `infdiff eval` or `infdiff sample
    --format npz`, e.g. one per seed, drawn on several machines) as one set with
    `evaluate_samples`; the checkpoint gives the config. Every file must hold the same
    resolutions. They are paired across resolutions (the same-function figures) when every file
    was drawn with the same diffusion.noise_grid > 0, or as overrides {"diffusion.noise_grid": F}
    says. out_dir defaults to <checkpoint folder>/eval. Returns the results."""
    from ..checkpoint import load_checkpoint
    from ..sample import sampling_config

    if not sample_files:
        raise ValueError("sample_files (--samples): give at least one samples.npz")
    if not os.path.isfile(ckpt_path):
        raise ValueError(f"ckpt_path (--ckpt): checkpoint not found: {ckpt_path}")
    cfg = sampling_config(load_checkpoint(ckpt_path, map_location="cpu")["config"], overrides)
    kept = [load_npz(path, "--samples file") for path in sample_files]
    resolutions = sorted(kept[0][0])
    for path, (arrays, _) in zip(sample_files, kept):
        if sorted(arrays) != resolutions:
            raise ValueError(f"--samples file {path}: resolutions {sorted(arrays)}, but {sample_files[0]} holds "
                             f"{resolutions}; every file must hold the same")
    if "diffusion.noise_grid" in (overrides or {}) or is_function_space(cfg):
        grid = noise_grid(cfg)
    else:
        grids = {file_grid for _, file_grid in kept}
        grid = next(iter(grids)) if len(grids) == 1 and None not in grids else 0
        if not grid and len(resolutions) > 1:
            log("--samples: the files were not all drawn on one diffusion.noise_grid, so their resolutions are not "
                "paired (no same-function figures); --set diffusion.noise_grid=F pairs them")
        cfg = dataclasses.replace(cfg, diffusion=dataclasses.replace(cfg.diffusion, noise_grid=grid))
    if grid:
        for path, (arrays, _) in zip(sample_files, kept):
            counts = {r: x.shape[0] for r, x in arrays.items()}
            if len(set(counts.values())) > 1:
                raise ValueError(f"--samples file {path}: {counts} samples per resolution; paired samples (noise_grid "
                                 f"{grid}) need as many at each")
    samples = {r: torch.cat([arrays[r] for arrays, _ in kept]) for r in resolutions}
    meta = {"checkpoint": os.path.abspath(ckpt_path), "family": cfg.model.family,
            "samples_from": [os.path.abspath(p) for p in sample_files], "overrides": dict(overrides or {})}
    if not is_function_space(cfg):
        meta["noise_grid"] = cfg.diffusion.noise_grid
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), "eval")
    return evaluate_samples(samples, cfg, out_dir, seed=seed, cache_dir=cache_dir, log=log, meta=meta)
