"""The report of one `python -m bench` run: the families' records merged into one JSON file,
a markdown page and its PNG plots (matplotlib, written without a display).

`write_report(families, results_dir, stem)` takes {family: the payload its script wrote}
and writes <stem>.json, <stem>.md and <stem>/*.png under results_dir. It reads only what
the records hold, so a test can feed it a few fake records. Plots:

- time vs density, one panel per op family and mode, one line per implementation;
- each implementation's time over its family's baseline (the dense or peer path);
- the training-step speedup against the paper's Table 3 (1.0, 1.0, 1.3, 1.6);
- bandwidth as a fraction of the copy bandwidth measured in the same run, for records
  that carry the bytes they must move ("floor_bytes").
"""
import json
import re
from fractions import Fraction
from pathlib import Path

# Each family's baseline implementation: the column its ratios divide by.
BASELINES = {"sparse_conv": "dense", "knn": "ckdtree", "spectral": "roundtrip"}
# ∞-Diff (Table 3, FFHQ 128): training speedup at these coordinate fractions.
PAPER_SPEEDUP = {1.0: 1.0, 0.5: 1.0, 0.25: 1.3, 0.125: 1.6}
_DENSITY = re.compile(r"(?:d=)?\b1/(\d+)\b")
_FULL = re.compile(r"\bd=1(?![/\d])")
_MODE = re.compile(r"(?<![\w+])(fwd\+bwd\(x\)|fwd\+bwd|fwd)(?![\w+(])")


def density_of(case: str):
    """The coordinate fraction a case string names ("1/4", "d=1/8", "d=1"), or None."""
    m = _DENSITY.search(case)
    if m:
        return 1.0 / int(m.group(1))
    return 1.0 if _FULL.search(case) else None


def mode_of(case: str) -> str:
    m = _MODE.search(case)
    return m.group(1) if m else "fwd"


def _series(payload):
    """{(mode, impl): [(density, seconds)]} of one family's timed records with a density."""
    out = {}
    for t in payload.get("timings", []):
        if t.get("median_s") is None:
            continue
        d = density_of(t["case"])
        if d is None:
            continue
        rest = _MODE.sub("", _DENSITY.sub("", _FULL.sub("", t["case"])))
        key = (mode_of(t["case"]), t["impl"], " ".join(rest.split()))
        out.setdefault(key, []).append((d, t["median_s"]))
    return {k: sorted(v) for k, v in out.items()}


def ratios_to_baseline(family, payload):
    """[(case, impl, time / baseline time)] for every case where the family's baseline ran."""
    base_impl = BASELINES.get(family)
    timings = [t for t in payload.get("timings", []) if t.get("median_s")]
    base = {t["case"]: t["median_s"] for t in timings if t["impl"] == base_impl}
    return [(t["case"], t["impl"], t["median_s"] / base[t["case"]]) for t in timings
            if t["impl"] != base_impl and t["case"] in base]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_time_vs_density(families, path):
    panels = [(f, p) for f, p in families.items() if _series(p)]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (family, payload) in zip(axes[0], panels):
        for (mode, impl, rest), points in _series(payload).items():
            d, s = zip(*points)
            ax.plot(d, [1e3 * v for v in s], marker="o", label=f"{impl} {mode} {rest}".strip())
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("coordinate fraction")
        ax.set_ylabel("median time (ms)")
        ax.set_title(family)
        ax.legend(fontsize=6)
    return _save(plt, fig, path)


def plot_ratio_to_baseline(families, path):
    rows = [(f, r) for f, p in families.items() for r in ratios_to_baseline(f, p)]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.22 * len(rows))))
    labels = [f"{f}: {impl} | {case}" for f, (case, impl, _) in rows]
    values = [r for _, (_, _, r) in rows]
    ax.barh(range(len(rows)), values)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), labels, fontsize=6)
    ax.set_xlabel("time / baseline time (lower is faster; baselines: "
                  + ", ".join(f"{f} {b}" for f, b in BASELINES.items()) + ")")
    return _save(plt, fig, path)


def plot_train_speedup(families, path):
    speedup = families.get("train_step", {}).get("train_step_speedup") or {}
    if not speedup:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    for resolution, by_fraction in speedup.items():
        pts = sorted((float(Fraction(f)), v) for f, v in by_fraction.items())
        ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", label=f"measured {resolution}^2")
    paper = sorted(PAPER_SPEEDUP.items())
    ax.plot([p for p, _ in paper], [v for _, v in paper], "k--", marker="s", label="paper (Table 3)")
    ideal = sorted({float(Fraction(f)) for v in speedup.values() for f in v} | set(PAPER_SPEEDUP))
    ax.plot(ideal, [1 / f for f in ideal], ":", color="gray", label="ideal 1/fraction")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("coordinate fraction")
    ax.set_ylabel("training-step speedup vs all coordinates")
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def bandwidth_rows(families, copy_bandwidth):
    """[(label, fraction of the copy bandwidth)] for records carrying "floor_bytes"."""
    rows = []
    if not copy_bandwidth:
        return rows
    for family, payload in families.items():
        for t in payload.get("timings", []):
            if t.get("median_s") and t.get("floor_bytes"):
                rows.append((f"{family}: {t['impl']} | {t['case']}", t["floor_bytes"] / t["median_s"] / copy_bandwidth))
    return rows


def plot_bandwidth(families, copy_bandwidth, path):
    rows = bandwidth_rows(families, copy_bandwidth)
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.22 * len(rows))))
    ax.barh(range(len(rows)), [r for _, r in rows])
    ax.set_yticks(range(len(rows)), [n for n, _ in rows], fontsize=6)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel(f"compulsory bytes / time, as a fraction of a measured copy ({copy_bandwidth / 1e9:.1f} GB/s)")
    return _save(plt, fig, path)


def markdown(families, machine, copy_bandwidth, plots, failed=()):
    lines = ["# Benchmark report", ""]
    if machine:
        lines += [f"Machine: {machine.get('cpu_model')} ({machine.get('cpu_count')} cores), torch "
                  f"{machine.get('torch')}, device {machine.get('device')}, load average "
                  f"{machine.get('loadavg_1_5_15min')}. Ratios come from implementations timed side by side "
                  "in one process; absolute times move with the load of a shared machine.", ""]
    if copy_bandwidth:
        lines += [f"Copy bandwidth measured in this run: {copy_bandwidth / 1e9:.2f} GB/s.", ""]
    for name, path in plots.items():
        if path is not None:
            lines += [f"## {name}", "", f"![{name}]({path.parent.name}/{path.name})", ""]
    for family, payload in families.items():
        lines += [f"## {family}", ""]
        rows = ratios_to_baseline(family, payload)
        if rows:
            lines += [f"| case | impl | time / {BASELINES[family]} |", "|---|---|---|"]
            lines += [f"| {c} | {i} | {r:.3f}x |" for c, i, r in rows]
            lines.append("")
        for key in ("headline", "train_step_speedup", "sampler_images_per_s"):
            if payload.get(key):
                lines += [f"{key}:", "", "```", json.dumps(payload[key], indent=1, default=str), "```", ""]
        skips = [t for t in payload.get("timings", []) if t.get("skipped")]
        for t in skips:
            lines.append(f"- skipped {t['impl']} on {t['case']}: {t['skipped']}")
        if skips:
            lines.append("")
    if failed:
        lines += ["## Failed", ""] + [f"- {f}" for f in failed] + [""]
    return "\n".join(lines)


def write_report(families, results_dir, stem, machine=None, copy_bandwidth=None, failed=()):
    """Write <stem>.json (every family's payload, the machine, the copy bandwidth),
    <stem>.md and the PNGs under <stem>/; returns the paths written."""
    results_dir = Path(results_dir)
    plot_dir = results_dir / stem
    plot_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{stem}.json"
    json_path.write_text(json.dumps({"machine": machine, "copy_bandwidth_Bps": copy_bandwidth,
                                     "failed": list(failed), "families": families}, indent=2, default=str) + "\n")
    plots = {
        "Time vs density": plot_time_vs_density(families, plot_dir / "time_vs_density.png"),
        "Ratio to the baseline": plot_ratio_to_baseline(families, plot_dir / "ratio_to_baseline.png"),
        "Training-step speedup vs the paper": plot_train_speedup(families, plot_dir / "train_step_speedup.png"),
        "Bandwidth vs copy": plot_bandwidth(families, copy_bandwidth, plot_dir / "bandwidth.png"),
    }
    md_path = results_dir / f"{stem}.md"
    md_path.write_text(markdown(families, machine, copy_bandwidth, plots, failed))
    return [json_path, md_path] + [p for p in plots.values() if p is not None]
