"""`infdiff compare`: the two families on the same data, with the same time budget or each for
its config's train.steps -- ∞-Diff
(the mollified config), a Fourier neural operator with trace-class forward noise and the same
operator with white forward noise (the fno config with function_space.noise set) -- each
trained (or taken from an earlier run in the same folder), scored by `evaluate_checkpoint` at
1x, 2x and 4x the training resolution, and written as one markdown table (compare.md) and
one JSON file (compare.json) with the metrics per resolution and the training cost per step."""
import json
import os

from .._atomic import atomic_write
from .run import check_arguments, evaluate_checkpoint, resolutions_to_evaluate

CONTENDERS = (  # (name, which config, overrides of it)
    ("infdiff", "mollified", {}),
    ("fno_trace_class", "fno", {"function_space.noise": "trace_class"}),
    ("fno_white", "fno", {"function_space.noise": "white"}),
)
# (key in compare.json, column title, where in eval.json: "native" or "train_res", factor for the
# table: eval.json keeps the spectrum errors as fractions, its report shows percent, as here)
COLUMNS = (
    ("fd", "FD (28 px view)", "train_res", 1),
    ("spectrum_err", "spectrum err % (native)", "native", 100),
    ("law_spectrum_err", "law spectrum err % (all bands)", "native", 100),
    ("law_spectrum_err_resolved", "law spectrum err % (resolved band)", "native", 100),
    ("swd", "patch SWD (native)", "native", 1),
)


def _configs(mollified, fno, overrides, out_dir, family_overrides=None):
    """{contender name: Config} training into <out_dir>/<name>; the families must be what their
    flags say and the three share one data section. family_overrides: {"mollified" or "fno":
    {field: value}}, set after `overrides` for that family's contenders only."""
    from ..config import ConfigError, load_config

    cfgs = {}
    for name, which, extra in CONTENDERS:
        path = mollified if which == "mollified" else fno
        own = (family_overrides or {}).get(which, {})
        cfg = load_config(path, {**overrides, **own, **extra, "train.out_dir": os.path.join(out_dir, name)})
        family = "mollified" if which == "mollified" else "fno"
        if cfg.model.family != family:
            raise ConfigError(f"--{which}: {path} has model.family {cfg.model.family!r}, expected {family!r}")
        cfgs[name] = cfg
    data = {name: cfg.to_dict()["data"] for name, cfg in cfgs.items()}
    first = data["infdiff"]
    for name, values in data.items():
        differ = sorted(k for k in set(first) | set(values) if first.get(k) != values.get(k) and k != "num_workers")
        if differ:
            raise ConfigError(f"--mollified and --fno must train on the same data; data.{differ[0]} differs "
                              f"({first.get(differ[0])!r} vs {values.get(differ[0])!r})")
    return cfgs


def _train_cost(state):
    """(steps, seconds, s_per_step) of a loaded checkpoint's training."""
    steps, seconds = int(state["step"]), float(state.get("elapsed", 0.0))
    return steps, seconds, (seconds / steps if steps else None)


def _earlier_evaluation(ckpt, state, eval_dir, resolutions, n, steps, seed):
    """The results in <eval_dir>/eval.json if they score this checkpoint (not written since) with
    the same resolutions, n, seed and sampler steps and no other sampling settings -- e.g. an
    `infdiff eval --ckpt <ckpt>` run beside the others -- else None."""
    from ..config import from_dict
    from ..family import sample_defaults

    path = os.path.join(eval_dir, "eval.json")
    if not os.path.isfile(path) or os.path.getmtime(path) < os.path.getmtime(ckpt):
        return None
    with open(path) as fh:
        results = json.load(fh)
    cfg = from_dict(state["config"])
    wanted = resolutions_to_evaluate(cfg, resolutions)
    same = (results.get("checkpoint") == os.path.abspath(ckpt) and results.get("resolutions") == wanted
            and all(results.get("n", {}).get(str(r)) == n for r in wanted) and results.get("seed") == seed
            and results.get("steps") == (steps or sample_defaults(cfg)[0]) and not results.get("overrides"))
    return results if same else None


def compare(mollified, fno, out_dir, minutes=None, resolutions=None, n=64, steps=None, seed=0, overrides=None,
            reuse=False, log=print, family_overrides=None):
    """Train the three contenders (unless `reuse` and <out_dir>/<name>/checkpoint.pt exists),
    evaluate each at `resolutions` (None: 1x, 2x, 4x), write compare.json and compare.md to
    out_dir and return the JSON's content. minutes: the time budget of each run
    (train.max_minutes); None: no budget, each run trains its config's train.steps, so the result
    does not depend on the machine's load. A run stops at its train.steps or at the budget,
    whichever comes first: raise train.steps for a budget that binds all three. overrides: config
    fields set for all three (e.g. {"train.steps": 3}); family_overrides: {"mollified" or "fno":
    {field: value}} for one family's contenders (e.g. each family's own train.steps). With `reuse`,
    an evaluation already in <out_dir>/<name>/eval that matches (`_earlier_evaluation`) is read
    instead of sampled again, so the three can be evaluated by `infdiff eval` side by side."""
    from ..checkpoint import load_checkpoint
    from ..train import train

    check_arguments(n, resolutions, steps)
    if minutes is not None and (not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or minutes <= 0):
        raise ValueError(f"minutes (--minutes) must be a number > 0 (the time budget of each run) or None, "
                         f"got {minutes!r}")
    unknown = sorted(set(family_overrides or {}) - {"mollified", "fno"})
    if unknown:
        raise ValueError(f"family_overrides (--set-mollified, --set-fno) keys must be 'mollified' or 'fno', "
                         f"got {unknown[0]!r}")
    budget = {"train.max_minutes": float(minutes if minutes is not None else 0)}  # 0: no time limit
    cfgs = _configs(mollified, fno, {**(overrides or {}), **budget}, out_dir, family_overrides)
    out = {"minutes": minutes, "n": n, "seed": seed, "contenders": {}}
    for name, cfg in cfgs.items():
        run = cfg.train.out_dir
        ckpt = os.path.join(run, "checkpoint.pt")
        if not (reuse and os.path.isfile(ckpt)):
            limit = f"{minutes:g} min" if minutes is not None else "no time limit"
            log(f"compare: training {name} ({cfg.model.family}) for {cfg.train.steps} steps ({limit})")
            train(cfg, quiet=True)
        state = load_checkpoint(ckpt)
        trained, seconds, per_step = _train_cost(state)
        eval_dir = os.path.join(run, "eval")
        results = _earlier_evaluation(ckpt, state, eval_dir, resolutions, n, steps, seed) if reuse else None
        if results is None:
            log(f"compare: evaluating {name} ({trained} steps)")
            results = evaluate_checkpoint(ckpt, resolutions, n, steps=steps, seed=seed, out_dir=eval_dir,
                                          log=lambda *_: None)
        else:
            log(f"compare: {name} ({trained} steps): reusing the evaluation in {eval_dir}")
        metrics = {}
        for res in results["resolutions"]:
            row = {}
            for key, _, where, _ in COLUMNS:
                value = results[where][str(res)].get(key)
                if value is not None:
                    row[key] = value
            metrics[str(res)] = row
        out["contenders"][name] = {
            "family": cfg.model.family, "noise": cfg.function_space.noise if cfg.model.family == "fno" else "mollified",
            "train_resolution": cfg.data.resolution, "steps": trained, "train_seconds": round(seconds, 1),
            "s_per_step": round(per_step, 4) if per_step else None, "checkpoint": os.path.abspath(ckpt),
            "metrics": metrics, "data_floor": {k: results["data"].get(k) for k, _, _, _ in COLUMNS if k in results["data"]},
        }
    out["dataset"] = next(iter(cfgs.values())).data.name
    with atomic_write(os.path.join(out_dir, "compare.json"), "w") as fh:
        json.dump(out, fh, indent=2)
    with atomic_write(os.path.join(out_dir, "compare.md"), "w") as fh:
        fh.write(table(out))
    log(table(out))
    return out


def _fmt(value):
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def table(results):
    """The markdown of compare.md: one row per contender and resolution."""
    used = [c for c in COLUMNS if any(c[0] in row for v in results["contenders"].values() for row in v["metrics"].values())]
    head = ["model", "noise", "steps", "train s", "s/step", "resolution"] + [title for _, title, _, _ in used]
    minutes = results["minutes"]
    budget = f"{minutes:g} min of training each" if minutes is not None else "each trained for its train.steps"
    lines = [f"# {results['dataset']}: ∞-Diff vs FNO, {budget}, n = {results['n']}",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, v in results["contenders"].items():
        for res, row in v["metrics"].items():
            cells = [name, v["noise"], str(v["steps"]), _fmt(v["train_seconds"]), _fmt(v["s_per_step"]), f"{res} px"]
            figures = [_fmt(None if row.get(k) is None else row[k] * factor) for k, _, _, factor in used]
            lines.append("| " + " | ".join(cells + figures) + " |")
    first = next(iter(results["contenders"].values()), None)
    if first and first["data_floor"]:  # the same data, seed and n for all three: one row
        floor = [_fmt(None if first["data_floor"].get(k) is None else first["data_floor"][k] * factor)
                 for k, _, _, factor in used]
        lines.append("| " + " | ".join(["data vs data", "-", "-", "-", "-", f"{first['train_resolution']} px"] + floor) + " |")
    stop = ("Each run stops at its config's train.steps or at the time budget, whichever comes first. "
            if minutes is not None else "Each run trains its config's train.steps, with no time budget. ")
    lines += ["", stop + "train s, s/step: wall clock, measured beside whatever else ran on the machine. "
              "data vs data: a disjoint test subset of the same n against the reference, at the training "
              "resolution (what a perfect model scores).", ""]
    return "\n".join(lines)


def register(subparsers):
    """Add `compare` to `subparsers`; returns its parser."""
    p = subparsers.add_parser("compare", help="train and evaluate ∞-Diff vs FNO + trace-class vs FNO + white noise",
                              description="Train ∞-Diff (--mollified config), FNO with trace-class noise and FNO with "
                                          "white noise (--fno config) on the same data, for the same time "
                                          "(--minutes) or each for its train.steps, evaluate "
                                          "each at 1x/2x/4x, write compare.md and compare.json. See "
                                          "docs/function_space.md.")
    p.add_argument("--mollified", default="grf_mixture", help="config of the ∞-Diff model (default: grf_mixture)")
    p.add_argument("--fno", default="fno_grf", help="config of the two FNO models (default: fno_grf)")
    p.add_argument("--minutes", type=float, default=None,
                   help="training time budget of each model (default: none, each trains its train.steps)")
    p.add_argument("--resolution", type=int, nargs="+", default=None,
                   help="resolutions to evaluate at (default: 1x, 2x and 4x the training resolution)")
    p.add_argument("--n", type=int, default=64, help="samples per resolution")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: each config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/compare", help="folder of the three runs and the report")
    p.add_argument("--reuse", action="store_true",
                   help="evaluate the checkpoints already in --out instead of training; an evaluation already in "
                        "<out>/<name>/eval with the same --resolution, --n, --seed and --steps is read, not redone")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="a config field set for all three")
    p.add_argument("--set-mollified", action="append", metavar="SECTION.FIELD=VALUE",
                   help="a config field set for the ∞-Diff model only (after --set)")
    p.add_argument("--set-fno", action="append", metavar="SECTION.FIELD=VALUE",
                   help="a config field set for the two FNO models only (after --set)")
    p.set_defaults(func=cmd_compare)
    return p


def cmd_compare(args):
    from ..config import parse_override

    overrides = dict(parse_override(o) for o in args.set or [])
    family_overrides = {"mollified": dict(parse_override(o) for o in args.set_mollified or []),
                        "fno": dict(parse_override(o) for o in args.set_fno or [])}
    compare(args.mollified, args.fno, args.out, args.minutes, resolutions=args.resolution, n=args.n, steps=args.steps,
            seed=args.seed, overrides=overrides, reuse=args.reuse, family_overrides=family_overrides)
    return 0


__all__ = ["CONTENDERS", "cmd_compare", "compare", "register", "table"]
