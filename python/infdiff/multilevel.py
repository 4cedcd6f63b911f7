"""Multilevel training (Hagemann et al.): a network trained on batches at several resolutions,
`train.levels`. The fno family's levels are Fourier truncations of the data at data.resolution;
the mollified family's are exact draws of a GRF law at and above data.resolution.

Which level step s trains on is a function of the step alone (`level_of_step`), so a resumed
run draws the same levels; each level reads the data through its own shuffled stream, whose
position at step s is the number of earlier steps at that level (`steps_at_level_before`).
`LevelCost` keeps the wall-clock cost of the optimizer steps per level, for the run's
cost.json and its closing log line."""
import json
import math

from ._atomic import atomic_write
from .config import LEVEL_SCHEDULES
from .model.fno import fourier_resample


def levels_of(train_cfg, data_resolution):
    """[(resolution, batch_size)] of the levels a run trains on: train.levels with
    train.level_batch_sizes (default train.batch_size), or the one level (data.resolution,
    train.batch_size) when train.levels is empty."""
    t = train_cfg
    if not t.levels:
        return [(data_resolution, t.batch_size)]
    sizes = t.level_batch_sizes or [t.batch_size] * len(t.levels)
    return list(zip(t.levels, sizes))


def coord_fraction_at(train_cfg, resolution):
    """The share of the pixels a mollified-family batch at `resolution` trains on: its level's
    train.level_coord_fractions entry, else train.coord_fraction."""
    t = train_cfg
    if t.level_coord_fractions and resolution in t.levels:
        return t.level_coord_fractions[t.levels.index(resolution)]
    return t.coord_fraction


def _phase_start(level, count, steps):
    """First step of phase `level` of `count` equal coarse-to-fine phases over `steps` steps."""
    return math.ceil(level * steps / count)


def level_of_step(train_cfg, count, step):
    """Index of the level optimizer step `step` (0-based) trains on, of `count` levels ordered
    coarse to fine. mixed: one level after the other, step by step (each gets the same share);
    coarse_to_fine: train.steps split into `count` equal phases, coarsest first (steps past
    train.steps stay on the finest)."""
    if count == 1:
        return 0
    if train_cfg.level_schedule == "mixed":
        return step % count
    steps = max(train_cfg.steps, 1)
    return min(count - 1, step * count // steps)


def steps_at_level_before(train_cfg, count, level, step):
    """How many of the steps 0 .. step - 1 train on level `level` (of `count`)."""
    if count == 1:
        return step
    if train_cfg.level_schedule == "mixed":
        return max(0, (step - level + count - 1) // count)
    steps = max(train_cfg.steps, 1)
    lo = _phase_start(level, count, steps)
    hi = _phase_start(level + 1, count, steps) if level + 1 < count else math.inf
    return int(min(max(step, lo), hi) - lo)


def to_level(x0, resolution):
    """A data batch x0 (B, C, R, R) at the level's resolution: its Fourier modes strictly below
    the coarse grid's Nyquist frequency, evaluated there (unchanged when R is the resolution)."""
    if x0.shape[-1] == resolution and x0.shape[-2] == resolution:
        return x0
    return fourier_resample(x0, (resolution, resolution))


class LevelCost:
    """Steps and wall-clock seconds of the optimizer steps per level: what a level costs
    (on a shared machine a rough figure, beside whatever else runs)."""

    def __init__(self, levels, saved=None):
        self.levels = levels
        self.steps = [0] * len(levels)
        self.seconds = [0.0] * len(levels)
        for resolution, batch, steps, seconds in saved or []:
            if (resolution, batch) in levels:
                i = levels.index((resolution, batch))
                self.steps[i], self.seconds[i] = int(steps), float(seconds)

    def add(self, level, seconds):
        self.steps[level] += 1
        self.seconds[level] += seconds

    def state(self):
        """[[resolution, batch_size, steps, seconds]]: plain values for the checkpoint."""
        return [[r, b, n, s] for (r, b), n, s in zip(self.levels, self.steps, self.seconds)]

    def rows(self):
        """One dict per level: resolution, batch_size, steps, seconds, s_per_step, examples_per_s."""
        out = []
        for (r, b), n, s in zip(self.levels, self.steps, self.seconds):
            out.append({"resolution": r, "batch_size": b, "steps": n, "seconds": round(s, 3),
                        "s_per_step": round(s / n, 5) if n else None,
                        "examples_per_s": round(n * b / s, 2) if s > 0 else None})
        return out

    def summary(self):
        """One line: seconds per step at each level."""
        parts = [f"{row['resolution']} px x {row['batch_size']}: {row['steps']} steps, "
                 f"{row['s_per_step'] if row['s_per_step'] is not None else '-'} s/step" for row in self.rows()]
        return "training cost per level (wall clock of the optimizer steps): " + "; ".join(parts)

    def write(self, path, schedule):
        with atomic_write(path, "w") as fh:
            json.dump({"schedule": schedule, "levels": self.rows(),
                       "note": "wall-clock seconds of the optimizer steps (forward, backward, update), "
                               "measured beside whatever else ran on the machine"}, fh, indent=2)


__all__ = ["LEVEL_SCHEDULES", "LevelCost", "level_of_step", "levels_of", "steps_at_level_before", "to_level"]
