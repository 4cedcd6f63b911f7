"""What every bench/<family>.py shares: timing side by side in one process, NVTX ranges,
the ratio table, machine info and the JSON file.

A family script builds a list of `Timing`s (one per (case, implementation)) with
`time_side_by_side` (several implementations of one case, round-robin) or `time_fn` (one),
prints `ratio_table(timings, baseline=...)` and calls `write_json(family, timings, args)`.
Ratios, not seconds, are what the table shows: they survive a change of machine, and the
absolute medians go to the JSON for whoever needs them.
"""
import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"

try:
    import nvtx as _nvtx
except ImportError:  # NVTX is optional: the ranges are only for profiling on a GPU
    _nvtx = None


def nvtx_range(name: str):
    """A context manager marking `name` on the NVTX timeline (Nsight Systems); a no-op when
    the nvtx package is missing or CUDA is absent, so it can wrap every op unconditionally."""
    if _nvtx is None or not torch.cuda.is_available():
        return contextlib.nullcontext()
    return _nvtx.annotate(name)


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Median wall time of one implementation on one case; `skipped` holds the reason when
    the implementation could not run (the table shows the reason instead of a ratio)."""

    case: str  # e.g. "256x256 d=1/4 fwd"
    impl: str  # e.g. "cpu", "dense", "spconv"
    median_s: Optional[float] = None
    repeats: int = 0
    all_s: list = field(default_factory=list)
    skipped: Optional[str] = None
    note: Optional[str] = None  # e.g. "does C times the FLOPs"
    # Compulsory bytes of the op (bench/roofline.py's floor), when the family knows them: the
    # report turns them into a fraction of the run's copy bandwidth.
    floor_bytes: Optional[float] = None


def time_fn(
    fn: Callable[[], object],
    *,
    case: str,
    impl: str,
    device="cpu",
    warmup: int = 1,
    repeats: int = 5,
    note: Optional[str] = None,
) -> Timing:
    """Time `fn()` (which must do the whole measured work, e.g. forward + backward):
    `warmup` untimed calls, then the median of `repeats` timed calls, each fenced by a
    device synchronisation so asynchronous CUDA work is counted. An exception is recorded
    as a skip with its message, so one broken implementation does not end the run."""
    try:
        with nvtx_range(f"{impl}:{case}:warmup"):
            for _ in range(warmup):
                fn()
            synchronize(device)
        samples = []
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            with nvtx_range(f"{impl}:{case}"):
                fn()
            synchronize(device)
            samples.append(time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - reported in the table and JSON, never hidden
        return Timing(case, impl, skipped=f"{type(exc).__name__}: {exc}", note=note)
    return Timing(case, impl, statistics.median(samples), repeats, samples, note=note)


def time_side_by_side(
    fns: dict, *, case: str, device="cpu", warmup: int = 1, repeats: int = 5, notes: Optional[dict] = None
) -> list:
    """Time several implementations of one case, {impl: fn}, round-robin: repeat r of every
    implementation runs before repeat r + 1 of any, so a burst of load from elsewhere on a
    shared machine hits all of them alike and their ratios stay fair. Returns one Timing per
    implementation (medians); one that raises is recorded as skipped with the message."""
    notes = notes or {}
    samples = {impl: [] for impl in fns}
    failed = {}
    for impl, fn in fns.items():
        try:
            with nvtx_range(f"{impl}:{case}:warmup"):
                for _ in range(warmup):
                    fn()
                synchronize(device)
        except Exception as exc:  # noqa: BLE001 - reported in the table and JSON, never hidden
            failed[impl] = f"{type(exc).__name__}: {exc}"
    for _ in range(repeats):
        for impl, fn in fns.items():
            if impl in failed:
                continue
            try:
                synchronize(device)
                start = time.perf_counter()
                with nvtx_range(f"{impl}:{case}"):
                    fn()
                synchronize(device)
                samples[impl].append(time.perf_counter() - start)
            except Exception as exc:  # noqa: BLE001
                failed[impl] = f"{type(exc).__name__}: {exc}"
    out = []
    for impl in fns:
        if impl in failed:
            out.append(Timing(case, impl, skipped=failed[impl], note=notes.get(impl)))
        else:
            s = samples[impl]
            out.append(Timing(case, impl, statistics.median(s), len(s), s, note=notes.get(impl)))
    return out


def copy_bandwidth(device="cpu", nbytes: int = 64 << 20, repeats: int = 5) -> float:
    """Bytes per second of a torch copy (read + write) of an `nbytes` buffer, best of `repeats`:
    the yardstick of the memory-floor fractions. 64 MB by default, past the last-level caches
    of most CPUs (a copy that fits in one measures the cache, not the memory)."""
    src = torch.ones(max(nbytes // 4, 1), device=device)
    dst = torch.empty_like(src)
    t = time_fn(lambda: dst.copy_(src), case="copy", impl="copy", device=device, repeats=repeats)
    return 2 * src.numel() * 4 / stat_of(t, "min")


def skipped(case: str, impl: str, reason: str) -> Timing:
    return Timing(case, impl, skipped=reason)


def stat_of(t: Timing, stat: str = "median") -> Optional[float]:
    """The median, or the minimum (the least disturbed sample: on a busy shared machine,
    interference only adds time, so ratios of minima are the steadier estimate)."""
    if t.median_s is None:
        return None
    return t.median_s if stat == "median" else min(t.all_s)


def ratio_table(timings, baseline: str, title: str = "", stat: str = "median") -> str:
    """A text table with one row per case and one column per implementation, each cell the
    implementation's `stat` ("median" or "min") time divided by the `baseline`
    implementation's on that case (the baseline column reads 1.000x). Skips and their
    reasons are listed below the table."""
    cases = list(dict.fromkeys(t.case for t in timings))
    impls = list(dict.fromkeys(t.impl for t in timings))
    if baseline in impls:
        impls.remove(baseline)
        impls.insert(0, baseline)
    by_key = {(t.case, t.impl): t for t in timings}
    header = ["case"] + [f"{i}" for i in impls]
    rows = []
    for case in cases:
        base = by_key.get((case, baseline))
        row = [case]
        for impl in impls:
            t = by_key.get((case, impl))
            if t is None:
                row.append("")
            elif t.skipped is not None:
                row.append("skip")
            elif base is None or not stat_of(base, stat):
                row.append("n/a")
            else:
                row.append(f"{stat_of(t, stat) / stat_of(base, stat):.3f}x")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def fmt(r):
        return "  ".join(cell.rjust(wd) if i else cell.ljust(wd) for i, (cell, wd) in enumerate(zip(r, widths)))

    lines = []
    if title:
        lines.append(title)
    lines.append(f"{stat} time / {stat} time of {baseline!r} (lower is faster)")
    lines.append(fmt(header))
    lines.append("  ".join("-" * wd for wd in widths))
    lines.extend(fmt(r) for r in rows)
    reasons = list(dict.fromkeys((t.impl, t.skipped) for t in timings if t.skipped))
    notes = list(dict.fromkeys((t.impl, t.note) for t in timings if t.note))
    for impl, reason in reasons:
        lines.append(f"skip {impl}: {reason}")
    for impl, note in notes:
        lines.append(f"note {impl}: {note}")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device="cpu") -> dict:
    device = torch.device(device)
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "device": str(device),
        "cuda": torch.version.cuda,
        # Other work on a shared machine skews absolute times (ratios less so): say how busy it was.
        "loadavg_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_json(family: str, timings, args=None, extra: Optional[dict] = None, device="cpu") -> Path:
    """Write the timings, the machine info and `extra` (headline figures, peers' versions or
    reasons) to args.json, or to bench/results/<family>.json when no path was given."""
    path = Path(args.json) if args is not None and getattr(args, "json", None) else RESULTS_DIR / f"{family}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "family": family,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(device),
        "args": vars(args) if args is not None else {},
        "timings": [asdict(t) for t in timings],
    }
    if extra:
        payload.update(extra)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def resolve_device(name: str) -> torch.device:
    """The torch.device of --device, refusing a CUDA device this machine does not have with a
    message naming the flag (rather than a traceback from deep inside the first op)."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise SystemExit(f"--device {name!r}: not a torch device ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name!r}: no CUDA device here (torch {torch.__version__}, built for CUDA "
                         f"{torch.version.cuda}); run on a GPU machine or pass --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device {name!r}: only cpu and cuda are benchmarked")
    return device


def arg_parser(description: str) -> argparse.ArgumentParser:
    """The flags every family script takes: --quick (small sizes, few repeats: what
    `python -m bench` runs), --json PATH, --repeats, --device."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats")
    parser.add_argument("--json", metavar="PATH", help="where to write the JSON (default bench/results/<family>.json)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser
