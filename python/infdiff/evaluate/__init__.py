"""`infdiff eval`: weight-free evaluation of samples at several resolutions against held-out
data (docs/evaluation.md).

    evaluate_checkpoint(ckpt, [28, 56, 112], n=1000, out_dir="runs/demo/eval")  # sample, then score
    evaluate_samples({28: x28, 56: x56}, cfg, out_dir)                          # score drawn samples
    evaluate_kept_samples(ckpt, ["e0/samples.npz", "e1/samples.npz"])          # pool kept samples

Modules: `features` (the feature CNN), `metrics` (spectrum, patch SWD, FD/KID, resampling),
`grf` (the GRF laws), `report` (JSON, markdown, plots, table), `run` (the entry points),
`command` (the CLI's `register`), `denoiser` (per-band error of the noise prediction, no sampling)."""
from .command import cmd_eval, register
from .features import classifier_scores, load_classifier
from .run import evaluate_checkpoint, evaluate_kept_samples, evaluate_samples

__all__ = ["classifier_scores", "cmd_eval", "evaluate_checkpoint", "evaluate_kept_samples", "evaluate_samples", "load_classifier", "register"]
