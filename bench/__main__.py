"""`python -m bench [--quick | --full] [--device cuda] [families...]`: run every
bench/<family>.py (--quick unless --full), each in its own process so one family's failure or
thread settings do not leak into the next, then write one report of the run:
bench/results/<machine>-<date>.json (every family's records), .md and PNG plots
(bench/report.py). A family whose module is missing is skipped with a line saying so."""
import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Listed (not globbed) so the order is stable and a family that is planned but not yet
# written shows up as skipped rather than silently absent.
FAMILIES = ("sparse_conv", "knn", "spectral", "train_step", "sampler", "roofline")
NOT_FAMILIES = ("report", "conftest")


def report_stem(machine: str = None) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", machine or platform.node() or "machine").strip("-")
    return f"{name}-{time.strftime('%Y-%m-%d')}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, few repeats (the default)")
    size.add_argument("--full", action="store_true", help="run the full sizes, not --quick")
    parser.add_argument("--device", default=None, help="passed to every family (cpu or cuda)")
    parser.add_argument("--results", default=str(HERE / "results"), help="where the report goes")
    parser.add_argument("families", nargs="*", help=f"a subset of {FAMILIES}")
    args = parser.parse_args(argv)
    extra = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith(("_", "test_")) and p.stem not in NOT_FAMILIES)
    families = args.families or list(dict.fromkeys(list(FAMILIES) + extra))
    failed, payloads = [], {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as parts:
        for family in families:
            if not (HERE / f"{family}.py").exists():
                print(f"== bench.{family}: skipped (bench/{family}.py does not exist)", flush=True)
                continue
            print(f"== bench.{family}", flush=True)
            part = Path(parts) / f"{family}.json"
            cmd = [sys.executable, "-m", f"bench.{family}", "--json", str(part)]
            cmd += [] if args.full else ["--quick"]
            cmd += ["--device", args.device] if args.device else []
            if subprocess.call(cmd, cwd=HERE.parent) != 0 or not part.exists():
                failed.append(family)
                continue
            payloads[family] = json.loads(part.read_text())
    from ._common import copy_bandwidth, machine_info
    from .report import write_report

    device = args.device or "cpu"
    machine = machine_info(device)
    machine["bench_seconds"] = round(time.perf_counter() - started, 1)
    paths = write_report(payloads, args.results, report_stem(), machine=machine,
                         copy_bandwidth=copy_bandwidth(device), failed=failed)
    print(f"report: {', '.join(str(p) for p in paths[:2])} ({len(paths) - 2} plots); "
          f"{machine['bench_seconds']:.0f} s")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
