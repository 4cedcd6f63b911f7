"""`python -m bench [--full]`: run every bench/<family>.py (with --quick unless --full), each in
its own process so one family's failure or thread settings do not leak into the next.
A family whose module is missing is skipped with a line saying so."""
import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Listed (not globbed) so the order is stable and a family that is planned but not yet
# written shows up as skipped rather than silently absent.
FAMILIES = ("sparse_conv", "knn", "spectral", "train_step", "roofline")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="run the full sizes, not --quick")
    parser.add_argument("families", nargs="*", help=f"a subset of {FAMILIES}")
    args = parser.parse_args(argv)
    extra = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith(("_", "test_")))
    families = args.families or list(dict.fromkeys(list(FAMILIES) + extra))
    failed = []
    for family in families:
        if not (HERE / f"{family}.py").exists():
            print(f"== bench.{family}: skipped (bench/{family}.py does not exist)", flush=True)
            continue
        print(f"== bench.{family}", flush=True)
        cmd = [sys.executable, "-m", f"bench.{family}"] + ([] if args.full else ["--quick"])
        if subprocess.call(cmd, cwd=HERE.parent) != 0:
            failed.append(family)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
