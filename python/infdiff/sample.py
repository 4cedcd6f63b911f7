"""`Sampler`: a trained model ready to draw, inpaint and super-resolve at any resolution.

It carries the network, its diffusion, its config (hence the training resolution) and the
device and dtype of the network's weights. Every tensor it makes (noise, coordinates, the
state of the reverse process) is created there and inputs are moved there, so a model on a
GPU samples on the GPU; results come back on the CPU, ready to save or score. The noise is
drawn at the target resolution and the sparse kernels are resampled by resolution /
training resolution (InfDiffNet `scale`)."""
import torch

from . import guided
from .checkpoint import load_checkpoint
from .config import from_dict
from .device import resolve_device
from .family import build_diffusion, is_function_space, sample_defaults, samplers
from .model import build_model

# what may differ from training when sampling: the model was trained the same way whatever these are
SAMPLING_FIELDS = ("diffusion.wiener_nsr", "diffusion.noise", "diffusion.sampler", "diffusion.sample_steps",
                   "function_space.sampler", "function_space.sample_steps")


def sampling_config(values, overrides=None):
    """The validated Config of a checkpoint's config dict with `overrides` applied, e.g.
    {"diffusion.wiener_nsr": 0.01}: only SAMPLING_FIELDS (to choose the Wiener ratio by
    evaluation, or to sample with the old per-pixel noise for a comparison)."""
    for key, value in (overrides or {}).items():
        if key not in SAMPLING_FIELDS:
            raise ValueError(f"--set {key}: only sampling settings can be changed for a trained model "
                             f"({', '.join(SAMPLING_FIELDS)})")
        section, name = key.split(".")
        values = {**values, section: {**values.get(section, {}), name: value}}
    return from_dict(values)


class Sampler:
    """model: an InfDiffNet or a FourierNeuralOperator in eval mode (its weights fix the device
    and dtype); diffusion: the process of `cfg` (family.build_diffusion), the config the model
    was trained with."""

    def __init__(self, model, diffusion, cfg):
        weight = next(model.parameters(), None)
        if weight is None:
            raise ValueError("model: has no parameters, so no device or dtype to sample on")
        self.model, self.diffusion, self.cfg = model, diffusion, cfg
        self.device, self.dtype = weight.device, weight.dtype

    @classmethod
    def from_checkpoint(cls, ckpt_path, device="auto", overrides=None):
        """The EMA model of a training checkpoint on `device` ("auto": CUDA when present).
        overrides: sampling settings other than the checkpoint's (see `sampling_config`)."""
        device = resolve_device(device)
        state = load_checkpoint(ckpt_path, map_location="cpu")
        cfg = sampling_config(state["config"], overrides)
        model = build_model(cfg)
        model.load_state_dict(state["ema"])
        return cls(model.to(device).eval(), build_diffusion(cfg), cfg)

    @property
    def train_resolution(self):
        return self.cfg.data.resolution

    def generator(self, seed):
        """A torch.Generator on the sampler's device seeded with `seed` (a CPU generator cannot
        draw CUDA noise). Devices without generators (meta) get None: unseeded draws."""
        if self.device.type == "meta":
            return None
        return torch.Generator(device=self.device).manual_seed(seed)

    def _here(self, x):  # an input image batch (B, C, H, W) on the sampler's device and dtype
        return x.to(device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def sample(self, n, resolution, steps=None, sampler=None, generator=None, batch=16):
        """n samples (n, C, R, R) at `resolution`, on the CPU: in [-1, 1] for the mollified
        family; the fno family's SDE does not clip, so its samples have the data's range only
        approximately. steps / sampler: default the family's sample_steps / sampler ("ddim" or
        "ddpm"; "sde", "ode" or "langevin" for fno)."""
        default_steps, default_sampler = sample_defaults(self.cfg)
        steps = steps or default_steps
        sampler = sampler or default_sampler
        if sampler not in samplers(self.cfg):
            raise ValueError(f"sampler: {sampler!r} is not a sampler of model.family {self.cfg.model.family} "
                             f"(one of {samplers(self.cfg)})")
        scale = resolution / self.train_resolution
        out = []
        for start in range(0, n, batch):
            shape = (min(batch, n - start), self.cfg.data.channels, resolution, resolution)
            if is_function_space(self.cfg):  # the operator needs no scale: it acts on functions, not pixels
                x = self.diffusion.sample(self.model, shape, steps=steps, sampler=sampler, generator=generator,
                                          device=self.device, dtype=self.dtype)
            else:
                x, _ = self.diffusion.sample(self.model, shape, steps=steps, sampler=sampler, generator=generator,
                                             device=self.device, dtype=self.dtype, scale=scale)
            out.append(x.cpu())
        return torch.cat(out)

    def _mollified_only(self, what):
        if is_function_space(self.cfg):
            raise ValueError(f"{what}: guided sampling is built for model.family mollified only; this checkpoint "
                             "is model.family fno")

    def inpaint(self, images, mask, steps=None, guidance_scale=1.0, start=1.0, generator=None, replace=True):
        """images (B, C, R, R) in [-1, 1] with the pixels where `mask` (broadcastable to images,
        1 = observed) is 0 filled in; on the CPU. See `guided.inpaint`."""
        self._mollified_only("inpaint")
        guided.check_images("inpaint", "images", images)
        guided.check_mask(mask, images)
        out = guided.inpaint(self.model, self.diffusion, self.cfg, self._here(images), self._here(mask),
                             steps=steps or self.cfg.diffusion.sample_steps, guidance_scale=guidance_scale,
                             start=start, generator=generator, replace=replace)
        return out.cpu()

    def superres(self, low, resolution, steps=None, guidance_scale=1.0, start=0.5, generator=None):
        """low (B, C, r, r) in [-1, 1] to (B, C, R, R) images, R = `resolution` > r, whose area
        average at r matches `low`; on the CPU. See `guided.superres`."""
        self._mollified_only("superres")
        guided.check_images("superres", "low", low)
        out = guided.superres(self.model, self.diffusion, self.cfg, self._here(low), resolution,
                              steps=steps or self.cfg.diffusion.sample_steps, guidance_scale=guidance_scale,
                              start=start, generator=generator)
        return out.cpu()
