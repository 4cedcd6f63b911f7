"""The figures of the diffusion-autoencoder mode (docs/autoencoder.md), from an autoencoder
checkpoint and, for the comparison, a plain one of the same data:

- the evaluation of both (`infdiff.evaluate.evaluate_checkpoint`) at 1x, 2x and 4x the training
  resolution: Fréchet distance on the feature CNN, the share of confident classifications and
  the class entropy (labelled data only), the native patch SWD; with each model's training
  steps and minutes, to see that they were trained for the same time;
- encode -> invert -> decode reconstruction error of the autoencoder at 1x and 2x (the test
  images upsampled bicubically);
- super-resolution of test images by 2x and 4x: the autoencoder by both methods (encode,
  sdedit) and the plain model by sdedit, each with the rms difference between the output
  area-averaged to the input's resolution and the input;
- PNGs of the reconstructions and the super-resolutions (the evaluation writes the sample
  grids), and report.json / report.md with the tables and the command that made them.

    python scripts/autoencoder_report.py --ae runs/mnist_ae/checkpoint.pt --plain runs/mnist/checkpoint.pt \\
        --out runs/autoencoder_report --eval-n 500 --n 16 --steps 50
"""
import argparse
import dataclasses
import json
import os
import shlex
import sys

import torch
import torch.nn.functional as F

from infdiff.checkpoint import load_checkpoint
from infdiff.data import build_dataset
from infdiff.evaluate import evaluate_checkpoint
from infdiff.images import rms_after_downsampling, save_grid
from infdiff.sample import Sampler

PNG_COLUMNS = 8  # images per row of the pictures: enough to judge, small enough for a README


def fmt(value, digits=4):
    return "-" if value is None else f"{value + 0.0:.{digits}f}"  # + 0.0: no "-0.000"


def table(header, rows):
    """A markdown table of `rows` (lists of cells) under `header`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def training(ckpt):
    state = load_checkpoint(ckpt)
    return {"steps": state["step"], "minutes": round(state.get("elapsed", 0.0) / 60, 2)}


def evaluation(models, args, log):
    """{label: {resolution: {fd, confident, entropy, swd}}} of each checkpoint's evaluate_checkpoint."""
    out = {}
    for label, ckpt in models.items():
        results = evaluate_checkpoint(ckpt, args.eval_resolutions, args.eval_n, steps=args.eval_steps, seed=args.seed,
                                      out_dir=os.path.join(args.out, f"eval_{label}"), cache_dir=args.cache_dir,
                                      device=args.device, log=log)
        out[label] = {res: {"fd": results["train_res"][str(res)].get("fd"),
                            "confident": results["train_res"][str(res)].get("confident_share"),
                            "entropy": results["train_res"][str(res)].get("class_entropy"),
                            "swd": results["native"][str(res)]["swd"]}
                      for res in results["resolutions"]}
    return out


def test_images(sampler, n):
    ds = build_dataset(dataclasses.replace(sampler.cfg.data, split="test", limit=n))
    return torch.stack([ds[i] for i in range(min(n, len(ds)))])


def reconstruction(ae, x, steps, out):
    """{factor: rms error} of encode -> invert -> decode at 1x and 2x, with a PNG of each
    (the first row the input, the second its reconstruction)."""
    errors = {}
    for factor in (1, 2):
        size = factor * x.shape[-1]
        big = x if factor == 1 else F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)
        z = ae.encode(big)
        rec = ae.decode(ae.invert(big, z, steps), z, steps)
        errors[factor] = (rec - big).pow(2).mean().sqrt().item()
        k = min(PNG_COLUMNS, len(x))
        save_grid(torch.cat([big[:k], rec[:k]]), os.path.join(out, f"reconstruction_{size}px.png"), nrow=k)
    return errors


def superresolution(ae, plain, x, factors, steps, seed, out):
    """{resolution: {method: rms(downsampled output - input)}}, with a PNG per resolution: the
    input (nearest-upsampled), then a row per method."""
    r, k = x.shape[-1], min(PNG_COLUMNS, len(x))
    results = {}
    for factor in factors:
        res = factor * r
        outputs = {"autoencoder, encode": ae.superres_encode(x, res, steps, ae.generator(seed)),
                   "autoencoder, sdedit": ae.superres(x, res, steps=steps, generator=ae.generator(seed))}
        if plain is not None:
            outputs["plain, sdedit"] = plain.superres(x, res, steps=steps, generator=plain.generator(seed))
        results[res] = {method: rms_after_downsampling(y, x) for method, y in outputs.items()}
        rows = [F.interpolate(x[:k], size=(res, res), mode="nearest")] + [y[:k] for y in outputs.values()]
        save_grid(torch.cat(rows), os.path.join(out, f"superres_{r}_to_{res}px.png"), nrow=k)
    return results


def markdown(report):
    md = ["# Diffusion autoencoder vs plain model", "", f"Made by: `{report['command']}`", ""]
    md += ["## Training", "", table(["model", "checkpoint", "steps", "minutes"],
                                    [[m, f"`{t['checkpoint']}`", t["steps"], t["minutes"]]
                                     for m, t in report["training"].items()]), ""]
    if report["evaluation"]:
        md += ["## Evaluation", "", f"n = {report['eval_n']} samples per resolution; FD, confidence and entropy on "
               "the feature CNN at the training resolution (labelled data only), SWD native "
               "(eval_<model>/report.md has every figure and the sample grids).", ""]
        rows = [[m, f"{res} px", fmt(f["fd"], 2), fmt(None if f["confident"] is None else 100 * f["confident"], 1),
                 fmt(f["entropy"], 3), fmt(f["swd"])] for m, by_res in report["evaluation"].items() for res, f in by_res.items()]
        md += [table(["model", "resolution", "FD", "confident %", "class entropy", "patch SWD"], rows), ""]
    md += ["## Reconstruction (encode -> invert -> decode)", "",
           f"{report['n']} test images, {report['steps']} DDIM steps; rms error in [-1, 1] units (the images' own rms: "
           f"{fmt(report['image_rms'])}).", "",
           table(["resolution", "rms error"], [[f"{res} px", fmt(e)] for res, e in report["reconstruction"].items()]), ""]
    md += [f"![reconstruction at {res} px](reconstruction_{res}px.png)\n" for res in report["reconstruction"]]
    md += ["## Super-resolution", "", "rms difference between the output area-averaged to the input's resolution "
           "and the input. Pictures: input (nearest-upsampled), then one row per method in the table's order.", ""]
    methods = list(next(iter(report["superres"].values())))
    md += [table(["input -> output"] + methods,
                 [[f"{report['resolution']} -> {res} px"] + [fmt(v[m]) for m in methods]
                  for res, v in report["superres"].items()]), ""]
    md += [f"![super-resolution to {res} px](superres_{report['resolution']}_to_{res}px.png)\n" for res in report["superres"]]
    return "\n".join(md)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ae", "--ckpt", required=True, help="checkpoint of the diffusion-autoencoder model")
    p.add_argument("--plain", default=None, help="checkpoint of the plain model to compare with (optional)")
    p.add_argument("--out", default="runs/autoencoder_report", help="folder of the report, its PNGs and the evaluations")
    p.add_argument("--eval-n", type=int, default=500, help="samples per resolution of the evaluation (0 = skip it)")
    p.add_argument("--eval-resolutions", type=int, nargs="+", default=None,
                   help="resolutions of the evaluation (default: 1x, 2x and 4x the training resolution)")
    p.add_argument("--eval-steps", type=int, default=None, help="sampler steps of the evaluation (default: the config's)")
    p.add_argument("--n", type=int, default=16, help="test images reconstructed and super-resolved")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps of inversion, decoding and super-resolution")
    p.add_argument("--superres", type=int, nargs="+", default=[2, 4], help="super-resolution factors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="feature CNN weights folder (as `infdiff eval --cache-dir`)")
    p.add_argument("--device", default="cpu", help="where the models sample (cpu, cuda or auto)")
    args = p.parse_args(argv)
    if args.n < 1 or args.steps < 1 or any(f < 2 for f in args.superres):
        p.error("--n and --steps must be >= 1 and every --superres factor >= 2")
    if args.eval_n == 1:
        p.error("--eval-n must be 0 (skip) or >= 2")
    ae = Sampler.from_checkpoint(args.ae, args.device)
    ae.require_autoencoder("--ae")
    plain = Sampler.from_checkpoint(args.plain, args.device) if args.plain else None
    if plain is not None and (plain.cfg.data.name, plain.train_resolution) != (ae.cfg.data.name, ae.train_resolution):
        p.error(f"--plain was trained on {plain.cfg.data.name} at {plain.train_resolution} px, --ae on "
                f"{ae.cfg.data.name} at {ae.train_resolution} px: they must share the data to be compared")
    os.makedirs(args.out, exist_ok=True)
    models = {"autoencoder": args.ae, **({"plain": args.plain} if args.plain else {})}
    x = test_images(ae, args.n)
    report = {"command": " ".join(shlex.quote(a) for a in ["python", "scripts/autoencoder_report.py"] + (argv or sys.argv[1:])),
              "training": {m: {"checkpoint": os.path.abspath(c), **training(c)} for m, c in models.items()},
              "eval_n": args.eval_n, "evaluation": evaluation(models, args, print) if args.eval_n else {},
              "n": len(x), "steps": args.steps, "resolution": x.shape[-1], "image_rms": x.pow(2).mean().sqrt().item(),
              "reconstruction": {f * x.shape[-1]: e for f, e in reconstruction(ae, x, args.steps, args.out).items()},
              "superres": superresolution(ae, plain, x, args.superres, args.steps, args.seed, args.out)}
    minutes = [t["minutes"] for t in report["training"].values()]
    if len(minutes) == 2 and abs(minutes[0] - minutes[1]) > 0.1 * max(minutes):
        print(f"note: the two models trained for {minutes[0]} and {minutes[1]} min: not the same training time")
    with open(os.path.join(args.out, "report.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    text = markdown(report)
    with open(os.path.join(args.out, "report.md"), "w") as fh:
        fh.write(text + "\n")
    print(text)
    print(f"report: {os.path.abspath(os.path.join(args.out, 'report.md'))}")
    return report


if __name__ == "__main__":
    main()
