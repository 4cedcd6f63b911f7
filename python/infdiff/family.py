"""The diffusion process of a Config's model.family, and the three places the two families
differ for the trainer and the sampler: the process, its training loss and its sampling
settings. The mollified family (diffusion.py) trains on a random subset of points and samples
with DDIM/DDPM; the fno family (function_space.py) trains on whole grids and samples its SDE
with Euler-Maruyama, the probability-flow ODE or annealed Langevin."""
from .config import FUNCTION_SAMPLERS
from .diffusion import MollifiedDiffusion
from .function_space import FunctionSpaceDiffusion
from .multilevel import coord_fraction_at


def is_function_space(cfg):
    return cfg.model.family == "fno"


def build_diffusion(cfg):
    """The forward/reverse process of `cfg`: MollifiedDiffusion, or FunctionSpaceDiffusion whose
    noise is scaled to unit pixel variance at the training resolution."""
    if not is_function_space(cfg):
        return MollifiedDiffusion(cfg)
    s = cfg.function_space
    return FunctionSpaceDiffusion(noise=s.noise, alpha=s.alpha, tau=s.tau, beta_min=s.beta_min, beta_max=s.beta_max,
                                  reference_resolution=cfg.data.resolution)


def training_loss(diffusion, cfg, net, x0, generator):
    """The loss of one batch x0 (B, C, H, W): on train.coord_fraction of the points for the
    mollified family, on the whole grid for the fno family (config validation keeps its
    coord_fraction at 1); a multilevel batch above data.resolution on its level's share, with the
    kernels resampled to it. In autoencoder mode the network also encodes x0 on its own subset."""
    if is_function_space(cfg):
        return diffusion.training_loss(net, x0, generator=generator)
    a = cfg.model.autoencoder
    return diffusion.training_loss(net, x0, coord_fraction_at(cfg.train, x0.shape[-1]), generator=generator,
                                   encoder_fraction=a.encoder_fraction if a.enabled else None)


def samplers(cfg):
    """The sampler names `cfg`'s family accepts."""
    return FUNCTION_SAMPLERS if is_function_space(cfg) else ("ddim", "ddpm")


def sample_defaults(cfg):
    """(steps, sampler) a sampler uses when none is given: the family's config section's."""
    if is_function_space(cfg):
        return cfg.function_space.sample_steps, cfg.function_space.sampler
    return cfg.diffusion.sample_steps, cfg.diffusion.sampler


def noise_grid(cfg):
    """The grid F every sampling noise is drawn on (diffusion.noise_grid: sample i is one function at
    every R), 0 for none; always 0 for the fno family, which draws its own noise."""
    return 0 if is_function_space(cfg) else cfg.diffusion.noise_grid


__all__ = ["build_diffusion", "is_function_space", "noise_grid", "sample_defaults", "samplers", "training_loss"]
