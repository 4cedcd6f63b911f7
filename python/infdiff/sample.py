"""`Sampler`: a trained model ready to draw, inpaint and super-resolve at any resolution.

It carries the network, its diffusion, its config (hence the training resolution) and the
device and dtype of the network's weights. Every tensor it makes (noise, coordinates, the
state of the reverse process) is created there and inputs are moved there, so a model on a
GPU samples on the GPU; results come back on the CPU, ready to save or score. The noise is
drawn at the target resolution, or on diffusion.noise_grid and restricted to it (one function
per seed at every resolution, `one_noise_grid`); on a finer grid the network runs with its sparse kernels
resampled by resolution / training resolution (InfDiffNet `scale`), or on the grid's
training-spacing sub-grids (diffusion.fine_grid phases)."""
import functools

import torch

from . import guided
from .autoencoder import encode_images, is_autoencoder, latent_diffusion, load_latent
from .checkpoint import load_checkpoint
from .config import from_dict, load_config, preset_names
from .device import resolve_device
from .family import build_diffusion, is_function_space, sample_defaults, samplers
from .model import build_model

# what may differ from training when sampling: the model was trained the same way whatever these are
SAMPLING_FIELDS = ("diffusion.wiener_nsr", "diffusion.noise", "diffusion.sampler", "diffusion.sample_steps",
                   "diffusion.fine_grid", "diffusion.ddpm_variance", "diffusion.noise_grid", "function_space.sampler", "function_space.sample_steps")


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


def preset_sampling_changes(cfg, overrides=None):
    """The packaged preset a checkpoint was trained as, and how its sampling settings now differ:
    (name, {field: (checkpoint's value, preset's value)}) when cfg's data, model and every
    non-sampling diffusion and function_space field equal exactly one preset's (train fields may
    differ: budgets, folders) and a SAMPLING_FIELDS value other than those in `overrides`
    differs; else None. A checkpoint samples with the config it was trained with, which may
    predate its preset's current sampler."""
    def split(config):
        values = config.to_dict()
        sampling = {key: values[key.split(".")[0]][key.split(".")[1]] for key in SAMPLING_FIELDS}
        trained = {section: {k: v for k, v in values[section].items() if f"{section}.{k}" not in SAMPLING_FIELDS}
                   for section in ("data", "model", "diffusion", "function_space")}
        return trained, sampling

    trained, sampling = split(cfg)
    matches = []
    for name in preset_names():
        preset_trained, preset_sampling = split(load_config(name))
        if preset_trained == trained:
            matches.append((name, preset_sampling))
    if len(matches) != 1:
        return None
    name, preset_sampling = matches[0]
    changes = {key: (sampling[key], preset_sampling[key]) for key in SAMPLING_FIELDS
               if key not in (overrides or {}) and sampling[key] != preset_sampling[key]}
    return (name, changes) if changes else None


def note_preset_sampling_changes(cfg, overrides=None, log=print):
    """Say through `log` which sampling settings of a checkpoint trained as a packaged preset differ
    from the preset's current ones (`preset_sampling_changes`), and the --set that samples as it does."""
    found = preset_sampling_changes(cfg, overrides)
    if found:
        name, changes = found
        log(f"note: trained as preset {name!r} (the same data, model and diffusion), but samples with its own "
            f"settings: {', '.join(f'{k} {old} (the preset now: {new})' for k, (old, new) in changes.items())}; "
            f"to sample as the preset does: {' '.join(f'--set {k}={new}' for k, (_, new) in changes.items())}")


def one_noise_grid(cfg, resolutions, overrides=None):
    """F for drawing `resolutions` (several R) from one seed: the largest R, so that every noise
    the sampler draws is one draw on F x F restricted to each R and sample i is one function at
    every R (diffusion.noise_grid, docs/noise.md#one-seed-every-resolution). 0 (leave the
    config's noise as it is) for one resolution, for a config that sets noise_grid or the
    per-pixel noise, for a `--set diffusion.noise_grid` in `overrides`, and for the fno family,
    which draws its own noise."""
    if (len(set(resolutions)) < 2 or "diffusion.noise_grid" in (overrides or {}) or is_function_space(cfg)
            or cfg.diffusion.noise_grid or cfg.diffusion.noise != "function"):
        return 0
    return max(max(resolutions), cfg.data.resolution)


class Sampler:
    """model: an InfDiffNet or a FourierNeuralOperator in eval mode (its weights fix the device
    and dtype); diffusion: the process of `cfg` (family.build_diffusion), the config the model
    was trained with; latent: the latent DDIM model of an autoencoder (None: encode/decode only)."""

    def __init__(self, model, diffusion, cfg, latent=None):
        weight = next(model.parameters(), None)
        if weight is None:
            raise ValueError("model: has no parameters, so no device or dtype to sample on")
        self.model, self.diffusion, self.cfg = model, diffusion, cfg
        self.device, self.dtype = weight.device, weight.dtype
        self.latent = None if latent is None else latent.to(device=self.device, dtype=self.dtype).eval()

    @classmethod
    def from_checkpoint(cls, ckpt_path, device="auto", overrides=None, log=print):
        """The EMA model of a training checkpoint on `device` ("auto": CUDA when present).
        overrides: sampling settings other than the checkpoint's (see `sampling_config`). Says
        through `log` when a checkpoint trained as a packaged preset samples otherwise than the
        preset now does (`note_preset_sampling_changes`)."""
        device = resolve_device(device)
        state = load_checkpoint(ckpt_path, map_location="cpu")
        cfg = sampling_config(state["config"], overrides)
        note_preset_sampling_changes(cfg, overrides, log)
        model = build_model(cfg)
        model.load_state_dict(state["ema"])
        latent = None
        if is_autoencoder(cfg):  # the latent model's EMA; from a checkpoint written before it had one, its weights
            key = next((k for k in ("latent_ema", "latent") if k in state), None)
            if key is not None:
                latent = load_latent(cfg, state[key], f"checkpoint {ckpt_path}", key)
        return cls(model.to(device).eval(), build_diffusion(cfg), cfg, latent)

    def with_settings(self, overrides):
        """The same model with other sampling settings (`sampling_config`), e.g.
        {"diffusion.noise_grid": 112}; its diffusion is rebuilt from the new config."""
        cfg = sampling_config(self.cfg.to_dict(), overrides)
        return Sampler(self.model, build_diffusion(cfg), cfg, self.latent)

    def with_one_noise(self, resolutions, overrides=None, log=print):
        """This sampler drawing `resolutions` from one noise per seed (`one_noise_grid`: sample i
        is one function at every R), saying so through `log`; itself when that does not apply."""
        grid = one_noise_grid(self.cfg, resolutions, overrides)
        if not grid:
            return self
        log(f"one noise per seed, drawn on {grid} x {grid}: sample i is the same function at "
            f"{' / '.join(map(str, sorted(set(resolutions))))} px (--set diffusion.noise_grid=0: independent draws)")
        return self.with_settings({"diffusion.noise_grid": grid})

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
        if is_autoencoder(self.cfg) and self.latent is None:
            raise ValueError("sample: this autoencoder checkpoint has no latent model to draw z from "
                             "(model.autoencoder.latent_steps was 0); use encode/decode instead")
        out = []
        for start in range(0, n, batch):
            shape = (min(batch, n - start), self.cfg.data.channels, resolution, resolution)
            if is_autoencoder(self.cfg):  # latent DDIM for z, then image DDIM conditioned on it
                z = self.sample_latents(shape[0], generator=generator)
                x, _ = self.diffusion.sample(self.conditioned(z), shape, steps=steps, sampler=sampler,
                                             generator=generator, device=self.device, dtype=self.dtype, scale=scale)
            elif is_function_space(self.cfg):  # the operator needs no scale: it acts on functions, not pixels
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

    def _network_for(self, observed):
        """What the guided samplers call: the network, conditioned on the observation's latent
        when it is an autoencoder (its decoder needs a z)."""
        return self.conditioned(self.encode(observed)) if is_autoencoder(self.cfg) else self.model

    def inpaint(self, images, mask, steps=None, guidance_scale=1.0, start=1.0, generator=None, replace=True):
        """images (B, C, R, R) in [-1, 1] with the pixels where `mask` (broadcastable to images,
        1 = observed) is 0 filled in; on the CPU. See `guided.inpaint`."""
        self._mollified_only("inpaint")
        guided.check_images("inpaint", "images", images)
        guided.check_mask(mask, images)
        out = guided.inpaint(self._network_for(images * mask), self.diffusion, self.cfg, self._here(images), self._here(mask),
                             steps=steps or self.cfg.diffusion.sample_steps, guidance_scale=guidance_scale,
                             start=start, generator=generator, replace=replace)
        return out.cpu()

    def superres(self, low, resolution, steps=None, guidance_scale=1.0, start=0.5, generator=None):
        """low (B, C, r, r) in [-1, 1] to (B, C, R, R) images, R = `resolution` > r, whose area
        average at r matches `low`; on the CPU. See `guided.superres`. For the fno family the
        input fixes the Fourier modes its grid holds instead (`FunctionSpaceDiffusion.superres`,
        with the checkpoint's sampler; guidance_scale and start do not apply)."""
        guided.check_images("superres", "low", low)
        if is_function_space(self.cfg):
            steps_default, sampler = sample_defaults(self.cfg)
            out = self.diffusion.superres(self.model, self._here(low), resolution, steps=steps or steps_default,
                                          sampler=sampler, generator=generator, dtype=self.dtype)
            return out.cpu()
        out = guided.superres(self._network_for(low), self.diffusion, self.cfg, self._here(low), resolution,
                              steps=steps or self.cfg.diffusion.sample_steps, guidance_scale=guidance_scale,
                              start=start, generator=generator)
        return out.cpu()

    # ------------------------------------------------------------ autoencoder mode
    def require_autoencoder(self, what):
        if not is_autoencoder(self.cfg):
            raise ValueError(f"{what}: needs a diffusion-autoencoder checkpoint (model.autoencoder.enabled: true); "
                             "this one is a plain model with no encoder")

    def conditioned(self, z):
        """The network with its latent fixed to z (B, latent_dim): what the diffusion samplers call."""
        return functools.partial(self.model, z=z.to(device=self.device, dtype=self.dtype))

    @torch.no_grad()
    def sample_latents(self, n, steps=None, generator=None):
        """n semantic latents (n, latent_dim) by the latent model's DDIM, on the sampler's device."""
        self.require_autoencoder("sample_latents")
        if self.latent is None:
            raise ValueError("sample_latents: this checkpoint has no latent model (model.autoencoder.latent_steps was 0)")
        a = self.cfg.model.autoencoder
        return latent_diffusion(self.cfg).sample(self.latent, n, steps or a.latent_sample_steps, generator=generator,
                                                 device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def encode(self, images):
        """Semantic latents z (B, latent_dim) of images (B, C, R, R) in [-1, 1], any R; on the CPU."""
        self.require_autoencoder("encode")
        guided.check_images("encode", "images", images)
        return encode_images(self.model, self._here(images), self.train_resolution).cpu()

    def invert(self, images, z=None, steps=None, end_t=None):
        """The stochastic encoding x_T (B, C, R, R) of images given z (default: their own
        encoding) by deterministic DDIM inversion; on the CPU."""
        self.require_autoencoder("invert")
        guided.check_images("invert", "images", images)
        z = self.encode(images) if z is None else z
        x = self.diffusion.invert(self.conditioned(z), self._here(images), steps or self.cfg.diffusion.sample_steps,
                                  end_t, scale=images.shape[-1] / self.train_resolution)
        return x.cpu()

    def decode(self, x_t, z, steps=None, start_t=None):
        """Images from a stochastic encoding x_t (at time start_t, default the one `invert` ends
        at) and z by unclipped DDIM, the reverse of `invert` with the same steps; on the CPU."""
        self.require_autoencoder("decode")
        start_t = self.diffusion.encoding_time() if start_t is None else start_t
        scale = x_t.shape[-1] / self.train_resolution
        x, _ = self.diffusion.sample(self.conditioned(z), tuple(x_t.shape), steps=steps or self.cfg.diffusion.sample_steps,
                                     sampler="ddim", device=self.device, dtype=self.dtype, scale=scale,
                                     x_init=self._here(x_t), start_t=start_t, clip=False)
        return x.cpu()

    def interpolate(self, a, b, weights, steps=None):
        """Images between a and b (1, C, R, R) at each weight w in `weights`: slerp of their
        stochastic encodings, lerp of their semantic latents; (len(weights), C, R, R) on the CPU."""
        from .model.autoencoder import slerp

        za, zb = self.encode(a), self.encode(b)
        xa, xb = self.invert(a, za, steps), self.invert(b, zb, steps)
        x = torch.cat([slerp(xa, xb, float(w)) for w in weights])
        z = torch.cat([torch.lerp(za, zb, float(w)) for w in weights])
        return self.decode(x, z, steps)

    def superres_encode(self, low, resolution, steps=None, generator=None):
        """Super-resolution as the paper does it: z of the low-resolution images, then DDIM at
        `resolution` from fresh noise conditioned on z; (B, C, R, R) on the CPU."""
        self.require_autoencoder("superres --method encode")
        guided.check_images("superres", "low", low)
        if resolution <= low.shape[-1]:
            raise ValueError(f"superres: resolution {resolution} must be above the input's {low.shape[-1]} px")
        z = self.encode(low)
        shape = (low.shape[0], self.cfg.data.channels, resolution, resolution)
        x, _ = self.diffusion.sample(self.conditioned(z), shape, steps=steps or self.cfg.diffusion.sample_steps,
                                     sampler="ddim", generator=generator, device=self.device, dtype=self.dtype,
                                     scale=resolution / self.train_resolution)
        return x.cpu()

    def inpaint_encode(self, images, mask, start_t, steps=None, generator=None):
        """Inpainting from the encoding of the masked image: z and the DDIM inversion to time
        start_t of images * mask, then the reverse process from there conditioned on z with
        the observed pixels replaced by the observation noised to each time. A small start_t
        keeps more of the masked image, a large one lets the model redraw more."""
        self.require_autoencoder("inpaint --start-t")
        guided.check_images("inpaint", "images", images)
        guided.check_mask(mask, images)
        steps_total = self.diffusion.steps
        if isinstance(start_t, bool) or not isinstance(start_t, int) or not 0 <= start_t < steps_total:
            raise ValueError(f"inpaint: --start-t must be an int in [0, diffusion.steps) = [0, {steps_total}), got {start_t!r}")
        images, mask = self._here(images), self._here(mask).expand_as(images)
        masked = images * mask
        steps = steps or self.cfg.diffusion.sample_steps
        z = self.encode(masked)
        x_t = self._here(self.invert(masked, z, steps, end_t=start_t))
        b = images.shape[0]
        d = self.diffusion

        def replace_observed(x, t_prev):
            if t_prev < 0:
                return mask * d.mollify(images) + (1 - mask) * x
            tt = torch.full((b,), t_prev, dtype=torch.long, device=self.device)
            noised = d.q_sample(images, tt, d.white_noise(images.shape, generator, self.device, images.dtype))
            return mask * noised + (1 - mask) * x

        x, _ = d.sample(self.conditioned(z), tuple(images.shape), steps=steps, sampler="ddim", generator=generator,
                        device=self.device, dtype=self.dtype, scale=images.shape[-1] / self.train_resolution,
                        x_init=x_t, start_t=start_t, post_step=replace_observed)
        return (mask * images + (1 - mask) * x).cpu()
