"""Outputs of `infdiff eval`, all in one folder: eval.json, report.md (linking only files of the
folder), PNG plots made with matplotlib (Agg): metrics vs resolution, spectra per resolution,
sample and reference grids; and the terminal table."""
import json
import math
import os

import torch

from .features import CONFIDENT, MAX_ENTROPY

# (key, header, format, scale); a missing value prints as "-". Keys ending in _data are the
# data-vs-data figures at the same n and resolution: what a perfect model would get. The
# _perfect one is the expected figure of a perfect sampler of T x0 after the decoder, at any n.
TRAIN_RES_COLUMNS = [
    ("fd", "FD", "{:.2f}"), ("kid", "KID x1e3", "{:.2f}", 1e3), ("confident_share", f"p>={CONFIDENT} %", "{:.1f}", 100.0),
    ("class_entropy", "entropy", "{:.3f}"), ("spectrum_err", "spec err %", "{:.1f}", 100.0), ("swd", "patch SWD", "{:.4f}"),
]
NATIVE_COLUMNS = [
    ("spectrum_err", "spec err %", "{:.1f}", 100.0), ("spectrum_err_data", "data spec err %", "{:.1f}", 100.0),
    ("swd", "patch SWD", "{:.4f}"), ("swd_data", "data SWD", "{:.4f}"),
    ("law_spectrum_err", "law err %", "{:.1f}", 100.0), ("law_spectrum_err_data", "data law err %", "{:.1f}", 100.0),
    ("law_spectrum_err_resolved", "law err resolved %", "{:.1f}", 100.0),
    ("law_spectrum_err_resolved_data", "data law err resolved %", "{:.1f}", 100.0),
    ("law_spectrum_err_resolved_configured", "law err resolved, configured weights %", "{:.1f}", 100.0),
    ("law_spectrum_err_resolved_paired", "law err resolved, coarsest's components %", "{:.1f}", 100.0),
    ("law_spectrum_err_resolved_perfect", "perfect sampler law err resolved %", "{:.1f}", 100.0),
    ("component1_share", "comp.1 share %", "{:.1f}", 100.0),
    ("component1_share_data", "data comp.1 share %", "{:.1f}", 100.0),
    ("component1_spectrum_err_resolved", "comp.1 law err resolved %", "{:.1f}", 100.0),
    ("component2_spectrum_err_resolved", "comp.2 law err resolved %", "{:.1f}", 100.0),
    ("s2_err", "S2 abs err", "{:.4f}"), ("s2_err_data", "data S2 abs err", "{:.4f}"),
    ("s2_rel_err", "S2 rel err %", "{:.1f}", 100.0), ("s2_rel_err_data", "data S2 rel err %", "{:.1f}", 100.0),
    ("vf_w1", "VF W1", "{:.4f}"), ("vf_w1_data", "data VF W1", "{:.4f}"),
    ("vf_mean", "VF mean", "{:.3f}"), ("vf_mean_data", "data VF mean", "{:.3f}"),
    ("same_function_rel_l2", "same function, vs coarsest %", "{:.1f}", 100.0),
    ("same_function_rel_l2_median", "same function, median %", "{:.1f}", 100.0),
    ("same_function_rel_l2_max", "same function, max %", "{:.1f}", 100.0),
]
# panels of metrics.png: (title, scale, keys drawn in it)
PANELS = [
    ("Fréchet distance (CNN features)", 1.0, ["fd"]), ("KID x1e3", 1e3, ["kid"]),
    (f"confident share (p >= {CONFIDENT}) %", 100.0, ["confident_share"]), ("class entropy", 1.0, ["class_entropy"]),
    ("spectrum rel. error vs data %", 100.0, ["spectrum_err"]), ("patch SWD (8x8)", 1.0, ["swd"]),
    ("spectrum rel. error vs the law %", 100.0, ["law_spectrum_err", "law_spectrum_err_resolved",
                                                 "component1_spectrum_err_resolved",
                                                 "component2_spectrum_err_resolved"]),
    ("component 1 share %", 100.0, ["component1_share"]),
]


def _get(row, key):
    value = row.get(key, row.get("mixture", {}).get(key))
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def _cell(row, column):
    key, _, fmt, *scale = column
    value = _get(row, key)
    if value is None:
        return "-"
    value *= scale[0] if scale else 1.0
    return fmt.format(value) if abs(value) < 1e5 else f"{value:.2e}"  # a bad model's 7e5 % stays narrow


def _used(columns, rows):
    """The columns with a value in some row (no FD column for unlabelled data, ...)."""
    return [c for c in columns if any(_cell(r, c) != "-" for r in rows)]


def _rows(results, mode):
    rows = [(f"{r} px", results[mode][str(r)]) for r in results["resolutions"]]
    if mode == "train_res" and results.get("data"):
        rows.insert(0, ("data", results["data"]))
    return rows


def _titles(results):
    r0 = results["train_resolution"]
    return {"train_res": f"At the training resolution ({r0} px; samples area-averaged to it) vs test data",
            "native": f"Native (samples at R vs test data resampled to R, {results['upsample']})"}


def table(results):
    """The terminal table: one block per comparison, one line per resolution."""
    lines = []
    for mode, columns in (("train_res", TRAIN_RES_COLUMNS), ("native", NATIVE_COLUMNS)):
        rows = _rows(results, mode)
        cols = _used(columns, [r for _, r in rows])
        widths = [max(len(c[1]), 8) for c in cols]
        lines.append(_titles(results)[mode] + ":")
        lines.append(f"  {'':>8} " + " ".join(f"{c[1]:>{w}}" for c, w in zip(cols, widths)))
        for label, row in rows:
            lines.append(f"  {label:>8} " + " ".join(f"{_cell(row, c):>{w}}" for c, w in zip(cols, widths)))
    for note in results.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _markdown_table(results, mode, columns):
    rows = _rows(results, mode)
    cols = _used(columns, [r for _, r in rows])
    out = ["| resolution | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    out += ["| " + label + " | " + " | ".join(_cell(row, c) for c in cols) + " |" for label, row in rows]
    return "\n".join(out)


def _clean(value):
    """value with NaN/inf floats as None and tensors as lists (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if torch.is_tensor(value):
        return _clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_json(results, path):
    with open(path, "w") as fh:
        json.dump(_clean(results), fh, indent=1, allow_nan=False)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    return plt


def _label(ax, xlabel, ylabel, title):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)


def _save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_metrics(results, path):
    """One panel per metric vs resolution: train-res and native lines, and the data-vs-data
    figures at the same n (dashed) that a perfect model would get."""
    plt = _pyplot()
    res = results["resolutions"]
    r0 = results["train_resolution"]
    panels = []
    for title, scale, keys in PANELS:
        lines = []
        for key in keys:
            tag = "" if len(keys) == 1 else f" {key.split('_')[0]}"
            for mode, style, label in (("train_res", "o-", f"area-averaged to {r0} px"), ("native", "s-", "native")):
                for suffix, ls, who in (("", "-", "samples"), ("_data", "--", "data")):
                    vals = [_get(results[mode][str(r)], key + suffix) for r in res]
                    if any(v is not None for v in vals):
                        lines.append((vals, style[0] + ls, f"{who}{tag}, {label}"))
            floor = _get(results.get("data", {}), key)
            if floor is not None:
                lines.append(([floor] * len(res), "--", f"data vs data{tag} at {r0} px"))
        if lines:
            panels.append((title, scale, keys[0], lines))
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.2 * rows), squeeze=False)
    for ax, (title, scale, key, lines) in zip(axes.flat, panels):
        for vals, style, label in lines:
            ax.plot(res, [math.nan if v is None else v * scale for v in vals], style, label=label, alpha=0.85)
        if key == "component1_share":
            weight = _get(results["native"][str(res[0])], "component1_weight")
            ax.axhline(100 * weight, ls=":", c="k", label="configured weight")
        if key == "class_entropy":
            ax.axhline(MAX_ENTROPY, ls=":", c="k", label="ln 10")
        ax.set_xscale("log", base=2)
        ax.set_xticks(res, [str(r) for r in res])
        shown = [v * scale for vals, _, _ in lines for v in vals if v is not None]
        if min(shown) > 0 and max(shown) > 30 * min(shown):
            ax.set_yscale("log")  # a bad model sits decades above the data-vs-data line
        ax.set_xlabel("resolution (px)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_spectrum(results, res, path):
    """Left: radial power spectra at `res` (native samples, data Fourier-resampled, the law for
    GRF data, and both at the training resolution); right: relative error per band, the
    bands of the scalar error marked."""
    plt = _pyplot()
    s = results["spectra"][str(res)]
    r0 = results["train_resolution"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))

    def curve(a, values, **kw):
        v = [math.nan if x is None or x <= 0 else x for x in values]  # log axes: zeros are gaps
        a.plot(range(1, len(v)), v[1:], **kw)  # band 0 (the mean) has no place on a log axis

    curve(ax, s["native"]["samples"], label=f"samples at {res} px", c="C0")
    curve(ax, s["native"]["data"], label=f"data, Fourier-resampled to {res} px", c="C1")
    if "law" in s["native"]:
        curve(ax, s["native"]["law"], label="the law", c="k", ls=":")
    curve(ax, s["train_res"]["samples"], label=f"samples area-averaged to {r0} px", c="C0", ls="--")
    curve(ax, s["train_res"]["data"], label=f"data at {r0} px", c="C1", ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("band |k| (cycles per unit length)")
    ax.set_ylabel("mean |c_k|^2")
    ax.set_title(f"power spectrum, {res} px")
    ax.legend(fontsize=7)
    def percent(values):
        return [None if v is None else 100 * v for v in values]

    curve(ax2, percent(s["native"]["rel_err"]), label="native vs data", c="C0")
    if "law_rel_err" in s["native"]:
        curve(ax2, percent(s["native"]["law_rel_err"]), label="native vs law", c="k", ls=":")
    curve(ax2, percent(s["train_res"]["rel_err"]), label=f"at {r0} px vs data", c="C0", ls="--")
    ax2.axvspan(1, min(res, r0) // 2 - 1, color="C1", alpha=0.1, label="band of the data error")
    ax2.set_xscale("log")
    if any(line.get_ydata().size and (line.get_ydata() > 0).any() for line in ax2.get_lines()):
        ax2.set_yscale("log")  # errors span decades; but identical sets have none to show
    _label(ax2, "band |k|", "|S - D| / D  (%)", "relative error per band")
    return _save(plt, fig, path)


def plot_microstructure(results, path):
    """Left: S2 of samples (solid) and data (dashed) at each resolution against the lag as a
    fraction of the domain, so that resolutions overlay; right: the volume-fraction
    histograms of samples (steps) and data (filled) at each resolution."""
    import numpy as np

    from .microstructure import histogram_edges

    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    curves = results["microstructure"]
    edges = histogram_edges(*[curves[str(r)][k] for r in results["resolutions"] for k in ("vf_samples", "vf_data")])
    for i, r in enumerate(results["resolutions"]):
        m = curves[str(r)]
        lag = [b / r for b in range(len(m["s2_samples"]))]
        ax.plot(lag, m["s2_samples"], c=f"C{i}", label=f"samples at {r} px")
        ax.plot(lag, m["s2_data"], c=f"C{i}", ls="--", label=f"data resampled to {r} px")
        counts = np.histogram(m["vf_samples"], edges)[0]
        ax2.stairs(counts / max(1, counts.sum()), edges, color=f"C{i}", label=f"samples at {r} px")
        counts = np.histogram(m["vf_data"], edges)[0]
        ax2.stairs(counts / max(1, counts.sum()), edges, color=f"C{i}", fill=True, alpha=0.2, label=f"data at {r} px")
    _label(ax, "lag |d| (fraction of the domain)", "S2(|d|)", "two-point correlation of the phase x > 0")
    _label(ax2, "volume fraction of phase x > 0", "share of images", "volume-fraction histogram")
    return _save(plt, fig, path)


def _fmt_meta(results):
    keys = [("checkpoint", "checkpoint"), ("dataset", "dataset"), ("train_resolution", "training resolution (px)"),
            ("n", "samples per resolution"), ("n_reference", "test images compared"), ("steps", "sampler steps"),
            ("family", "model family"), ("sampler", "sampler"), ("ddpm_variance", "DDPM step variance"),
            ("wiener_nsr", "Wiener nsr"), ("fine_grid", "finer grids"), ("noise", "forward noise"),
            ("noise_grid", "noise grid (0: each resolution drawn apart)"), ("overrides", "settings other than the checkpoint's"),
            ("seed", "seed"), ("samples_file", "samples scored (float32 in [-1, 1])"), ("sampling_seconds", "sampling time (s)"), ("seconds", "scoring time (s)")]
    return "\n".join(f"- {label}: `{results[k]}`" for k, label in keys if k in results)


def write(results, samples, references, out_dir, grid_n=64):
    """eval.json, report.md and the PNGs into out_dir. samples / references: {R: (n, C, R, R)}."""
    from ..images import save_grid

    os.makedirs(out_dir, exist_ok=True)
    res = results["resolutions"]
    files = {"metrics": plot_metrics(results, os.path.join(out_dir, "metrics.png"))}
    for r in res:
        files[f"spectrum_{r}"] = plot_spectrum(results, r, os.path.join(out_dir, f"spectrum_{r}px.png"))
        files[f"samples_{r}"] = save_grid(samples[r][:grid_n], os.path.join(out_dir, f"samples_{r}px.png"))
        files[f"data_{r}"] = save_grid(references[r][:grid_n], os.path.join(out_dir, f"data_{r}px.png"))
    if "microstructure" in results:
        files["microstructure"] = plot_microstructure(results, os.path.join(out_dir, "microstructure.png"))
    results["files"] = {k: os.path.basename(v) for k, v in files.items()}
    save_json(results, os.path.join(out_dir, "eval.json"))
    r0 = results["train_resolution"]
    md = [f"# Evaluation: {results['dataset']}, trained at {r0} px", "", _fmt_meta(results), ""]
    md += [f"- note: {note}" for note in results["notes"]] + [""]
    md += [f"## {_titles(results)['train_res']}", "",
           "The first row, *data*, compares two disjoint sets of test images of the same size: the figure a "
           "perfect model would get at this n (noise floor). Spectrum error: mean relative error "
           f"|S - D| / D over bands 1..{r0 // 2 - 1}.", "", _markdown_table(results, "train_res", TRAIN_RES_COLUMNS), "",
           f"## {_titles(results)['native']}", "",
           f"Spectrum error vs the data over bands 1..min(R, {r0})/2 - 1 (the data carry nothing finer)"
           + (f"; vs the law over bands 1..R/2 - 1 (law err) and over the resolved band 1..{results['resolved_band']} "
              "(law err resolved: bands where the law stands above the noise of the process's least noisy state)."
              if "resolved_band" in results else "."),
           "", _markdown_table(results, "native", NATIVE_COLUMNS), "",
           "## Metrics vs resolution", "", "![metrics vs resolution](metrics.png)", "", "## Spectra", ""]
    md += [f"![power spectra at {r} px](spectrum_{r}px.png)\n" for r in res]
    if "microstructure" in results:
        md += ["## Microstructure: two-point correlation and volume fractions", "",
               "Phase: pixels with x > 0. S2 abs err: mean |S2 samples - S2 data| over lags 1..R/2 - 1 px; "
               "VF W1: 1-D Wasserstein distance between the per-image volume fractions.", "",
               "![two-point correlation and volume-fraction histograms](microstructure.png)", ""]
    md += ["## Samples and the data they are compared with", "",
           "| resolution | samples | test data (resampled) |", "|---|---|---|"]
    md += [f"| {r} px | ![samples at {r} px](samples_{r}px.png) | ![data at {r} px](data_{r}px.png) |" for r in res]
    md += ["", "Metric definitions and how to read them: docs/evaluation.md in the infdiff repository.", ""]
    with open(os.path.join(out_dir, "report.md"), "w") as fh:
        fh.write("\n".join(md))
    return os.path.join(out_dir, "report.md")
