"""The training loop: AdamW, mixed precision, EMA, gradient clipping, atomic checkpoints
(every N steps and on Ctrl-C), bit-identical --resume, tqdm, a metrics CSV, sample grids,
and DDP under torchrun (each rank draws its own times, noise and coordinates).

Determinism: the batch of step s is a function of (seed, rank, s) (see `_batches`), and all
other randomness comes from one generator per rank whose state is checkpointed, together
with torch's global RNG (dropout). So stopping at step s and resuming equals not stopping."""
import copy
import csv
import math
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from ._atomic import atomic_write
from .autoencoder import is_autoencoder, train_latent
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, from_dict
from .data import build_dataset
from .device import resolve_device
from .family import build_diffusion, training_loss
from .images import save_grid
from .model import build_model
from .multilevel import LevelCost, level_of_step, levels_of, steps_at_level_before, to_level
from .sample import SAMPLING_FIELDS, Sampler
from .threads import ThreadGovernor


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if world > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _batches(dataset, batch_size, seed, rank, world, start_step, num_workers=0, field="train.batch_size"):
    """Batches from step `start_step` on; epoch e's order is DistributedSampler(seed, e)."""
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    per_epoch = len(sampler) // batch_size
    if per_epoch == 0:
        raise ValueError(f"{field} {batch_size} exceeds the {len(sampler)} examples of this rank")
    epoch, offset = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        order = list(sampler)
        groups = [order[i * batch_size : (i + 1) * batch_size] for i in range(per_epoch)][offset:]
        # A DataLoader draws its workers' base seed from the generator it is given, else from
        # torch's global RNG, which dropout uses: one per (seed, rank, epoch) keeps a resume
        # that starts mid-epoch bit-identical to not stopping.
        loader_gen = torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 1_000_003 + epoch) % 2**63)
        yield from DataLoader(dataset, batch_sampler=groups, num_workers=num_workers, generator=loader_gen)
        epoch, offset = epoch + 1, 0


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN or Inf: training stops before the weights take them."""


# Fields that steer a run without changing what it learns: a resume may change them freely
# (train.steps also ends the cosine learning-rate curve: a resume with more steps stretches it).
RESUME_MAY_CHANGE = frozenset({
    "train.steps", "train.max_minutes", "train.out_dir", "train.ckpt_every", "train.sample_every",
    "train.sample_n", "train.log_every", "train.device", "train.compile", "train.adapt_threads", "data.num_workers",
})
# What defines the network and the problem it learns: a checkpoint of another value is refused.
RESUME_MUST_MATCH = ("model.", "diffusion.", "function_space.", "data.name", "data.resolution", "data.channels")
# ... except the settings only the sampler reads (the noise mode is not one here: it is the
# training noise at any level other than data.resolution)
RESUME_SAMPLING_ONLY = frozenset(f for f in SAMPLING_FIELDS if f != "diffusion.noise")


def _flatten(values, prefix=""):
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(saved, current):
    """[(dotted field, checkpoint value, this config's value)] of every field that differs
    between two config dicts (a field missing on one side shows as '<missing>')."""
    a, b = _flatten(saved), _flatten(current)
    missing = "<missing>"
    return [(k, a.get(k, missing), b.get(k, missing)) for k in sorted(set(a) | set(b)) if a.get(k, missing) != b.get(k, missing)]


def _non_finite(tensors):
    """Names of the tensors in a {name: tensor} mapping holding NaN or Inf."""
    return [name for name, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


@torch.no_grad()
def scheduled_lr(train_cfg, step, elapsed=0.0):
    """The learning rate of optimizer step `step` (0-based), `elapsed` seconds into the run,
    under train.lr_schedule and train.warmup_steps. constant and cosine are functions of the
    step alone, so a resumed run follows the same curve; cosine_budget also of the time spent."""
    t = train_cfg
    lr = t.lr
    if t.lr_schedule in ("cosine", "cosine_budget") and t.steps > 0:
        progress = min(step, t.steps) / t.steps
        if t.lr_schedule == "cosine_budget" and t.max_minutes > 0:
            progress = max(progress, min(1.0, elapsed / (60 * t.max_minutes)))
        lr *= 0.5 * (1 + math.cos(math.pi * progress))
    if step < t.warmup_steps:
        lr *= (step + 1) / t.warmup_steps
    return lr


def ema_decay_at(decay, step):
    """The EMA decay used for optimizer step `step` (0-based): min(decay, (1 + step) / (10 + step)).

    The EMA starts as a copy of the random initial weights. With a fixed decay d it still holds
    d^n of them after n steps -- 14 % after 386 steps at d = 0.995 -- and samples of such an
    average are far off (an fno_grf run of 386 steps: pixel std 0.51 by Euler-Maruyama and 2.9 by
    the probability-flow ODE, where the trained weights give the data's 0.23). The warm-up (as in
    diffusers' EMAModel) averages over about the last tenth of the steps early on, so the share
    of the initial weights falls below 1e-9 within 100 steps, and reaches d after about 9 / (1 - d)
    steps. A function of the step alone, so a resumed run follows the same curve."""
    return min(decay, (1 + step) / (10 + step))


def ema_update(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


class Trainer:
    def __init__(self, cfg: Config, resume=None, quiet=False):
        self.cfg = cfg
        t = cfg.train
        self.rank, self.world = _dist_info()
        self.device = resolve_device(t.device)
        self.is_main = self.rank == 0
        self.quiet = quiet or not self.is_main
        torch.manual_seed(t.seed + self.rank)
        self.gen = torch.Generator(device=self.device).manual_seed(t.seed * 7919 + self.rank)
        self.model = build_model(cfg).to(self.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.diffusion = build_diffusion(cfg)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        use_fp16 = t.precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_fp16)
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16 if use_fp16 else torch.bfloat16}.get(t.precision)
        self.step, self.elapsed = 0, 0.0
        self.ckpt_path = os.path.join(t.out_dir, "checkpoint.pt")
        self.metrics_path = os.path.join(t.out_dir, "metrics.csv")
        # the latent DDIM model of the autoencoder mode and its EMA (which samples), trained at the end of fit
        self.latent = self.latent_ema = None
        self.last_saved = None  # (step, path) of the last checkpoint written or resumed from
        self._step_rng = None  # RNG states at the start of the step in progress (None: between steps)
        self._updating = False  # True while the optimizer/EMA update of a step is half applied
        self.cost = None  # LevelCost of the steps trained, per level (created by fit)
        self._saved_cost = None  # the checkpoint's, which fit continues
        if resume:
            self._restore(load_checkpoint(resume, map_location=self.device), resume)
        self.net = self.model
        if t.compile:
            # fullgraph: a graph break would silently give back most of the speed-up, so it fails loudly;
            # the compiled module shares its parameters with self.model, which is what gets saved
            self.net = torch.compile(self.model, fullgraph=True)
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.net)

    # ------------------------------------------------------------ state
    def state(self):
        """The state at the last completed step. During a step (a Ctrl-C in its forward or
        backward) the RNG states are the ones the step started from, so a resume redraws it."""
        gen_state, torch_rng = self._step_rng or (self.gen.get_state(), torch.get_rng_state())
        extra = {} if self.latent is None else {"latent": self.latent.state_dict(), "latent_ema": self.latent_ema.state_dict()}
        cost = self.cost.state() if self.cost is not None else self._saved_cost
        if cost is not None:
            extra["level_cost"] = cost
        return {
            **extra,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "gen": gen_state,
            "torch_rng": torch_rng,
            "world": self.world,
        }

    def _restore(self, state, path="<checkpoint>"):
        # through from_dict: a checkpoint from before a field existed compares with that field's default
        saved, current = from_dict(state["config"]).to_dict(), self.cfg.to_dict()
        diffs = config_differences(saved, current)
        fatal = [d for d in diffs if d[0].startswith(RESUME_MUST_MATCH) and d[0] not in RESUME_SAMPLING_ONLY]
        if fatal:
            lines = "\n".join(f"  {k}: checkpoint {a!r}, this config {b!r}" for k, a, b in fatal)
            raise ValueError(
                f"--resume: {path} is a checkpoint of another model or problem; these fields differ:\n{lines}\n"
                "resume with the checkpoint's config (its values above), or start a new run without --resume"
            )
        changed = [d for d in diffs if d[0] not in RESUME_MAY_CHANGE | RESUME_SAMPLING_ONLY]
        if changed and not self.quiet:
            lines = "\n".join(f"  {k}: checkpoint {a!r} -> {b!r}" for k, a, b in changed)
            print(f"--resume: continuing {path} with changed training fields (this config's values are used; "
                  f"the run will differ from an uninterrupted one):\n{lines}", file=sys.stderr)
        for key in ("opt", "scaler", "gen", "torch_rng"):
            if key not in state:
                raise ValueError(f"--resume: {path} has no {key!r} state (a sampling-only checkpoint?): it cannot be "
                                 "resumed; start a new run without --resume")
        try:
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            self.opt.load_state_dict(state["opt"])
            self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"--resume: {path} does not fit this model: {err}") from None
        for group in self.opt.param_groups:  # the config's value wins (each step sets the lr from the schedule)
            group["weight_decay"] = self.cfg.train.weight_decay
        bad = _non_finite({**{f"model.{k}": v for k, v in state["model"].items()},
                           **{f"ema.{k}": v for k, v in state["ema"].items()}})
        if bad:
            raise ValueError(f"--resume: {path} holds NaN/Inf weights ({', '.join(bad[:3])}"
                             f"{', ...' if len(bad) > 3 else ''}): resume from an earlier checkpoint")
        self.step, self.elapsed = state["step"], state.get("elapsed", 0.0)
        self._saved_cost = state.get("level_cost")
        if state.get("world", 1) == self.world:  # per-rank streams only carry over to the same world size
            self.gen.set_state(state["gen"].to(self.gen.get_state().device))
            torch.set_rng_state(state["torch_rng"])
        self.last_saved = (self.step, path)

    def save(self):
        """Write the checkpoint (main rank), unless the weights hold NaN/Inf: then the last
        good checkpoint is kept and TrainingDiverged is raised."""
        if not self.is_main:
            return
        if self._updating:
            raise RuntimeError(f"save: step {self.step + 1}'s update is half applied; not writing an inconsistent state")
        bad = _non_finite({**{f"model.{k}": v for k, v in self.model.state_dict().items()},
                           **{f"ema.{k}": v for k, v in self.ema.state_dict().items()}})
        if bad:
            raise TrainingDiverged(f"not saving step {self.step}: NaN/Inf in {', '.join(bad[:3])}"
                                   f"{', ...' if len(bad) > 3 else ''}; {self._kept()}")
        save_checkpoint(self.state(), self.ckpt_path)
        self.last_saved = (self.step, self.ckpt_path)
        if self.cost is not None:
            self.cost.write(os.path.join(self.cfg.train.out_dir, "cost.json"), self.cfg.train.level_schedule)

    def _kept(self):
        if self.last_saved is None:
            return "no checkpoint was written in this run"
        step, path = self.last_saved
        return f"the last good checkpoint (step {step}) is kept at {path}"

    # ------------------------------------------------------------ loop
    def train_step(self, x0):
        """One optimizer step. A NaN/Inf loss (or, without fp16 loss scaling, NaN/Inf
        gradients) raises TrainingDiverged before the weights are touched."""
        t = self.cfg.train
        self.net.train()
        self._step_rng = (self.gen.get_state(), torch.get_rng_state())
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            loss = training_loss(self.diffusion, self.cfg, self.net, x0, self.gen)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if t.grad_clip > 0:
            self.scaler.unscale_(self.opt)
            norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        elif not self.scaler.is_enabled():
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        else:
            norm = None  # fp16 GradScaler: it skips steps with Inf gradients itself
        checks = loss.detach().float().reshape(1)
        if norm is not None and not self.scaler.is_enabled():
            checks = torch.cat([checks, norm.detach().float().reshape(1).to(checks.device)])
        if not bool(torch.isfinite(checks).all()):  # one host sync per step
            what = "loss" if not math.isfinite(checks[0].item()) else "gradient norm"
            value = checks[0 if what == "loss" else 1].item()
            raise TrainingDiverged(
                f"the {what} became {value} at step {self.step + 1}; training stopped before the weights took it "
                f"and {self._kept()}. Lower train.lr, set train.grad_clip > 0 or check the data"
            )
        self._updating = True
        for group in self.opt.param_groups:
            group["lr"] = scheduled_lr(t, self.step, self.elapsed)
        self.scaler.step(self.opt)
        self.scaler.update()
        ema_update(self.ema, self.model, ema_decay_at(t.ema_decay, self.step))
        self.step += 1
        self._updating, self._step_rng = False, None
        return loss.detach()

    def _log_metrics(self, row):
        # empty: a run killed between creating the file and its first write; it still needs the header
        new = not os.path.exists(self.metrics_path) or os.path.getsize(self.metrics_path) == 0
        with open(self.metrics_path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["step", "loss", "it_per_s", "elapsed_s"])
            writer.writerow(row)

    def sampler(self):
        """A Sampler of the EMA model as it is now, on the training device."""
        return Sampler(self.ema, self.diffusion, self.cfg, latent=self.latent_ema)

    def fit_latent(self, dataset):
        """The second stage of the autoencoder mode: the latent DDIM model on the EMA encoder's
        latents (main rank; it is small, so the other ranks do not help)."""
        a = self.cfg.model.autoencoder
        if not (self.is_main and is_autoencoder(self.cfg) and a.latent_steps > 0):
            return

        def log(step, loss):
            if not self.quiet:
                print(f"latent model: step {step}/{a.latent_steps}, loss {loss:.4f}", file=sys.stderr)

        # its own generator and a forked global RNG: the image model's streams, which the
        # checkpoint carries, stay as if this stage had not run, so a resume is still bit-identical
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed * 7919 + 104729)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.cfg.train.seed)
            self.latent, self.latent_ema = train_latent(self.cfg, self.ema, dataset, self.device, gen, log)

    def _sample_grid(self):
        if is_autoencoder(self.cfg) and self.latent_ema is None:
            return  # no latent model to draw z from until the end of training
        sampler = self.sampler()
        x = sampler.sample(self.cfg.train.sample_n, self.cfg.data.resolution, generator=sampler.generator(0))
        save_grid(x, os.path.join(self.cfg.train.out_dir, f"samples_{self.step:07d}.png"))

    def fit(self, stop_at=None):
        """Train until train.steps (or `stop_at`) or train.max_minutes; returns the losses logged."""
        t = self.cfg.train
        os.makedirs(t.out_dir, exist_ok=True)
        self._trim_metrics()
        total = t.steps if stop_at is None else min(stop_at, t.steps)
        dataset = build_dataset(self.cfg.data)
        levels = levels_of(t, self.cfg.data.resolution)
        self.cost = LevelCost(levels, self._saved_cost)
        # levels above data.resolution (mollified family, GRF laws) draw the law there
        sources = [dataset if res <= self.cfg.data.resolution else build_dataset(self.cfg.data, res) for res, _ in levels]
        # one data stream per level (level 0's is the single-level run's), each at the position
        # its earlier steps left it, so a resume draws the same batches
        streams = [_batches(sources[i], batch, t.seed + i, self.rank, self.world,
                            steps_at_level_before(t, len(levels), i, self.step), self.cfg.data.num_workers,
                            "train.level_batch_sizes" if t.level_batch_sizes else "train.batch_size")
                   for i, (_, batch) in enumerate(levels)]
        from tqdm import tqdm

        budget = 60 * t.max_minutes
        if budget:  # the bar shows the time budget; the steps go in its postfix
            bar = tqdm(total=round(budget), initial=min(round(self.elapsed), round(budget)), disable=self.quiet,
                       dynamic_ncols=True, unit="s", bar_format="{l_bar}{bar}| {n:.0f}/{total} s of the time budget{postfix}")
        else:
            bar = tqdm(total=total, initial=self.step, disable=self.quiet, dynamic_ncols=True)
        losses, window, last = [], [], time.perf_counter()
        start = time.perf_counter() - self.elapsed
        self.budget_note = None
        threads = torch.get_num_threads()
        governor = ThreadGovernor() if t.adapt_threads and self.device.type == "cpu" else None
        try:
            while self.step < total:
                if budget and time.perf_counter() - start > budget:
                    self.budget_note = self._budget_note(total)
                    if not self.quiet:
                        bar.write(self.budget_note)
                    break
                level = level_of_step(t, len(levels), self.step)
                x0 = to_level(next(streams[level]).to(self.device, non_blocking=True), levels[level][0])
                if governor is not None:
                    governor.update()
                began = time.perf_counter()
                window.append(self.train_step(x0))
                self.cost.add(level, time.perf_counter() - began)
                shown = self.elapsed
                self.elapsed = time.perf_counter() - start
                if budget:
                    bar.update(max(0.0, min(self.elapsed, budget) - min(shown, budget)))
                    bar.set_postfix_str(f"step {self.step}/{total}", refresh=False)
                else:
                    bar.update(1)
                if self.step % t.log_every == 0 or self.step == total:
                    loss = torch.stack(window).mean().item()
                    if self.world > 1:
                        value = torch.tensor([loss], device=self.device)
                        dist.all_reduce(value)
                        loss = value.item() / self.world
                    now = time.perf_counter()
                    rate = len(window) / max(now - last, 1e-9)
                    window, last = [], now
                    losses.append((self.step, loss))
                    step = f"step {self.step}/{total}, " if budget else ""
                    bar.set_postfix_str(f"{step}loss={loss:.4f}, it/s={rate:.2f}")
                    if self.is_main:
                        self._log_metrics([self.step, f"{loss:.6f}", f"{rate:.3f}", f"{self.elapsed:.1f}"])
                if t.ckpt_every and self.step % t.ckpt_every == 0:
                    self.save()
                if t.sample_every and self.step % t.sample_every == 0 and self.is_main:
                    self._sample_grid()
        except KeyboardInterrupt:
            if self._updating:  # Ctrl-C inside the optimizer/EMA update: the state is neither step s nor s + 1
                note = f"interrupted during step {self.step + 1}'s weight update: not saving; {self._kept()}"
            else:
                try:
                    self.save()
                    note = f"interrupted: checkpoint at step {self.step} written to {self.ckpt_path}"
                except TrainingDiverged as err:
                    note = f"interrupted: {err}"
            if not self.quiet:
                bar.write(note)
            raise
        finally:
            bar.close()
            torch.set_num_threads(threads)
        self.fit_latent(dataset)
        self.save()
        if len(levels) > 1 and not self.quiet:
            print(self.cost.summary(), file=sys.stderr)
        return losses

    def _budget_note(self, planned):
        """The plain account of a run the time budget stopped before its planned steps."""
        t = self.cfg.train
        rate = self.step / max(self.elapsed, 1e-9)
        need = planned / (60 * t.max_minutes)
        return (f"time budget of {t.max_minutes:g} min reached at step {self.step} of the {planned} planned: "
                f"this run averaged {rate:.2f} steps/s and the plan needs {need:.2f}. The machine was slower or "
                "busier than the preset assumes (other programs running?), so the model is less trained than "
                "planned and its samples will be weaker.")

    def _trim_metrics(self):
        """Drop metric rows past the step this run starts from (all of them for a new run: its
        checkpoint replaces the old one too; on resume, the rows a killed run logged after its
        last checkpoint): they are logged again as the steps are redone."""
        if not (self.is_main and os.path.exists(self.metrics_path)):
            return
        with open(self.metrics_path, newline="") as fh:
            rows = list(csv.reader(fh))
        keep = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= self.step]
        if len(keep) != len(rows):
            with atomic_write(self.metrics_path, "w", newline="") as fh:
                csv.writer(fh).writerows(keep)


def train(cfg, resume=None, quiet=False):
    trainer = Trainer(cfg, resume=resume, quiet=quiet)
    try:
        trainer.fit()
        if trainer.world > 1:  # the ranks reach the collective teardown together; not on an error, where a peer may never come
            dist.barrier()
    finally:
        if trainer.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return trainer


def config_from_checkpoint(state):
    return from_dict(state["config"])


__all__ = ["Trainer", "TrainingDiverged", "config_differences", "config_from_checkpoint", "ema_decay_at", "ema_update", "scheduled_lr",
           "train"]
