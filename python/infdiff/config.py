"""Dataclass configs loaded from YAML files or from the presets packaged in infdiff/configs/
(`--config mnist`; `configs/mnist.yaml` from a source checkout, where configs/ links there).

Every field is checked on load: an unknown key or a bad value raises ConfigError naming the
field by its dotted path (e.g. `train.coord_fraction`), so a typo never silently falls back
to a default. Every YAML text (a config file, a preset, an override value) is read by `load_yaml`,
which refuses a key repeated in one mapping: plain YAML would keep the last and drop the other."""
import dataclasses
import importlib.resources
import math
import os
import typing
from dataclasses import dataclass, field

import yaml


class ConfigError(ValueError):
    """A config file or override with an unknown key or an invalid value."""


DATASETS = ("mnist", "cahn_hilliard", "fashion_mnist", "image_folder", "grf", "grf_mixture")
GRF_DATASETS = ("grf", "grf_mixture")  # drawn in code from a known law, at any resolution
BOUNDARIES = ("reflect", "periodic")
NORMALIZE_MODES = ("partial", "mean", "none")
PRECISIONS = ("fp32", "bf16", "fp16")
LR_SCHEDULES = ("constant", "cosine", "cosine_budget")
NOISE_MODES = ("function", "pixel")
CONV_PADDINGS = ("zeros", "circular")
FINE_GRIDS = ("resample", "phases")
DDPM_VARIANCES = ("small", "large", "analytic")
PREDICTIONS = ("eps", "v")
FAMILIES = ("mollified", "fno")
FUNCTION_NOISES = ("trace_class", "white")
FUNCTION_SAMPLERS = ("sde", "ode", "langevin")
LEVEL_SCHEDULES = ("mixed", "coarse_to_fine")


@dataclass
class DataConfig:
    name: str = "mnist"
    resolution: int = 28  # training resolution (square images)
    channels: int = 1
    path: str = ""  # image_folder / fashion_mnist folder ("" = the dataset's default)
    split: str = "train"
    val_fraction: float = 0.05  # datasets without an official split
    split_seed: int = 0
    num_workers: int = 0
    limit: int = 0  # use only the first `limit` examples (0 = all)
    # grf / grf_mixture: the law of the synthetic fields
    grf_alpha: float = 2.5
    grf_tau: float = 8.0
    grf_mixture_alpha2: float = 4.0
    grf_mixture_tau2: float = 4.0
    grf_mixture_weight: float = 0.5  # probability of the first component
    grf_size: int = 10000


@dataclass
class DiffusionConfig:
    steps: int = 1000
    schedule: str = "cosine"
    # Gaussian blur std in domain units ([0, 1]^2); "auto" = one training pixel, 1 / data.resolution
    # (the paper's choice); 0 = no mollifier; otherwise at least half a training pixel
    mollifier_sigma: typing.Union[float, str] = "auto"
    boundary: str = "reflect"
    # "function": one white-noise measure on [0, 1]^2, per-pixel std sqrt(H W) / data.resolution
    # (docs/noise.md); "pixel": unit per-pixel std at every resolution (infdiff before issue 9,
    # kept only to reproduce the before/after comparison: T xi then shrinks as R grows)
    noise: str = "function"
    # Wiener decoding G / (G^2 + nsr): a power ratio. The official ∞-Diff code divides by
    # G^2 + inv_snr^2 with inv_snr = 0.05 (an amplitude ratio), i.e. nsr = 0.0025.
    wiener_nsr: float = 0.0025
    sample_steps: int = 100  # DDIM steps by default
    sampler: str = "ddim"
    # How the network runs on a grid finer than the training one (docs/diffusion.md#finer-grids):
    # "resample", the paper's: on every pixel at once, its point-level kernels bilinearly resampled
    # by R / data.resolution; "phases": at R = m * data.resolution, on the m^2 interleaved sub-grids
    # of the training spacing, each as one training-resolution image with the kernels it was trained
    # with (the point density it was trained on), the outputs interleaved back (other R refused)
    fine_grid: str = "resample"
    # The DDPM sampler's step variance (docs/diffusion.md#the-ddpm-step-variance): "small", Ho et
    # al.'s beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, exact where x_t pins the data down;
    # "large", beta_t, about right where the data dominate the noise; "analytic", per Fourier band
    # between the two, from the share of the noise the network's estimate leaves unexplained
    # (after Bao et al. 2022, Analytic-DPM; per cosine band under diffusion.boundary reflect)
    ddpm_variance: str = "small"
    # Min-SNR-gamma loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
    # Weighting Strategy"): each example's noise-prediction loss times min(SNR_t, gamma) / SNR_t,
    # SNR_t = abar_t / (1 - abar_t), so the low-noise times stop dominating the gradient;
    # 0 = uniform weights (plain DDPM)
    min_snr_gamma: float = 0.0
    # The loss in the decoder's space: ||W (f - T xi)||^2 / mean(W^2), W = G / (G^2 + nsr) the Wiener
    # filter at this nsr, instead of ||f - T xi||^2. The mollified process's exact loss carries T^-1
    # (paper, appendix B), which the plain loss drops because it does not move the minimum; but a
    # finite model then leaves the fine bands' errors, which decoding multiplies by up to 1/G, almost
    # unpenalised (docs/diffusion.md#the-loss-in-the-decoders-space). On a subset of the pixels
    # (train.coord_fraction p < 1) it is, in expectation, p * that loss + (1 - p) * the plain one. 0 = the plain loss.
    loss_wiener_nsr: float = 0.0
    # What the network outputs (docs/diffusion.md#what-the-network-predicts): "eps", the mollified
    # noise T xi (DDPM); "v", sqrt(abar_t) T xi - sqrt(1 - abar_t) T x0 (Salimans & Ho 2022), whose
    # scale stays that of the data at every t, so at high noise its error is not divided by
    # sqrt(abar_t) on the way to the estimate of T x0. Samplers read either as a noise estimate.
    prediction: str = "eps"
    # The grid every sampling noise is drawn on (docs/noise.md#one-seed-every-resolution): 0, on the
    # sampling grid itself; F, white noise on F x F restricted to the sampling grid R <= F by its modes
    # below R's Nyquist (the same white-noise measure, exactly, at R), so one seed gives the same
    # function at every resolution up to F. A sampling setting: the model is trained the same way.
    noise_grid: int = 0


@dataclass
class FNOConfig:
    """The Fourier neural operator of model.family fno (model/fno.py)."""
    width: int = 32  # channels inside the operator
    modes: int = 12  # Fourier modes kept per axis
    depth: int = 4  # spectral blocks
    grid: int = 0  # the internal grid the blocks run on (0 = 2 * modes, the smallest that holds every mode)
    time_dim: int = 64


@dataclass
class FunctionSpaceConfig:
    """The variance-preserving SDE of model.family fno (function_space.py); the mollified
    family reads the diffusion section instead."""
    noise: str = "trace_class"  # trace_class: N(0, C), C = (tau^2 - Laplacian)^-alpha; white: for comparison
    alpha: float = 2.0
    tau: float = 3.0
    beta_min: float = 0.1
    beta_max: float = 20.0
    sampler: str = "sde"  # sde: Euler-Maruyama; ode: probability-flow Heun; langevin: annealed Langevin
    sample_steps: int = 100


@dataclass
class AutoencoderConfig:
    """The diffusion-autoencoder mode (docs/autoencoder.md): a semantic encoder (the first half
    of the network) whose latent z conditions the decoder, and a latent DDIM model of z."""
    enabled: bool = False  # off: the plain network, no encoder weights (plain checkpoints load unchanged)
    latent_dim: int = 64  # size of z (the paper: 1024 at 256 px)
    encoder_fraction: float = 0.25  # share of the pixels the encoder sees, its own random subset
    # the latent DDIM model (an MLP with skips, after Preechakul et al.), trained on the EMA
    # encoder's latents once the image model is done
    latent_hidden: int = 256
    latent_layers: int = 4
    latent_steps: int = 2000  # its optimizer steps (0 = no latent model: encode/decode only)
    latent_batch: int = 128
    latent_lr: float = 1e-3
    # its weights' EMA, which sampling uses (as the image model's train.ema_decay); 0 = the last weights
    latent_ema_decay: float = 0.995
    latent_examples: int = 0  # training images encoded for it (0 = all)
    latent_diffusion_steps: int = 1000  # its linear-beta schedule
    latent_sample_steps: int = 50  # its DDIM steps when sampling


@dataclass
class ModelConfig:
    # mollified: the ∞-Diff network on points with the diffusion section's process;
    # fno: the Fourier neural operator on whole grids with the function_space section's SDE
    family: str = "mollified"
    channels: int = 32  # width of the sparse branch
    kernel_size: int = 7
    normalize: str = "partial"
    # the point-level convolutions' border on a full grid: zeros (the window's count normalises,
    # as on a sparse subset) or circular (periodic data: diffusion.boundary periodic, every pixel
    # in training, no autoencoder; the sparse path has no wrap-around windows)
    conv_padding: str = "zeros"
    sparse_blocks: int = 1  # sparse operator blocks before the grid (and as many after)
    mlp_ratio: int = 2
    grid_size: int = 32  # the fixed grid of the U-Net
    knn: int = 3
    unet_channels: int = 32
    unet_mults: typing.List[int] = field(default_factory=lambda: [1, 2, 2])
    unet_res_blocks: int = 1
    # the U-Net's body runs on grid_size / unet_patch: its input convolution is a p x p patch
    # embedding of stride p, its output a convolution and a pixel shuffle by p (1 = the plain
    # U-Net on the whole grid). The grid the k-NN lerp fills stays grid_size: a cheaper grid path
    # at a fixed grid resolution (docs/train_step_flops.md)
    unet_patch: int = 1
    attention_heads: int = 4
    dropout: float = 0.1
    time_dim: int = 128
    fno: FNOConfig = field(default_factory=FNOConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)


@dataclass
class TrainConfig:
    batch_size: int = 32
    lr: float = 2e-4
    # constant, or cosine: lr * (1 + cos(pi * step / steps)) / 2, annealing to 0 at train.steps
    # (a short run ends on weights the noise of a large step has not just moved); cosine_budget:
    # the same curve over the run's progress max(step / steps, elapsed / max_minutes), so a run
    # that a busy machine stops at its time budget still ends annealed (its lr then depends on
    # the clock, so two runs match bit for bit only when the steps, not the budget, end them)
    lr_schedule: str = "constant"
    warmup_steps: int = 0  # linear ramp from lr / warmup_steps over the first steps
    weight_decay: float = 0.0
    steps: int = 2000
    max_minutes: float = 0.0  # stop after this wall-clock time (0 = no limit)
    coord_fraction: float = 0.25
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # reached after a warm-up, min(ema_decay, (1 + step) / (10 + step)): see train.ema_decay_at
    precision: str = "bf16"  # bf16 autocast on CPU; fp16 + GradScaler on CUDA
    seed: int = 0
    out_dir: str = "runs/default"
    ckpt_every: int = 500
    sample_every: int = 1000
    sample_n: int = 16
    log_every: int = 10
    device: str = "auto"
    # wrap the network in torch.compile(fullgraph=True) for the training steps: faster steps
    # after a one-off compile of tens of seconds, worth it for long runs (sampling stays eager)
    compile: bool = False
    # multilevel training: resolutions, coarse to fine (empty = data.resolution only). model.family
    # fno: each batch a Fourier truncation of the data. Mollified family, GRF data only: the first
    # level is data.resolution (the training resolution the noise, mollifier and kernels are
    # measured in) and finer levels are exact draws of the same law there, trained on with the
    # kernels resampled (docs/diffusion.md#training-at-several-resolutions). mixed: one level per
    # step in turn; coarse_to_fine: train.steps in equal phases, coarsest first; batch sizes and
    # (mollified family) shares of the pixels per level (empty = train.batch_size and
    # train.coord_fraction each). The cost per level goes to <out_dir>/cost.json
    levels: typing.List[int] = field(default_factory=list)
    level_schedule: str = "mixed"
    level_batch_sizes: typing.List[int] = field(default_factory=list)
    level_coord_fractions: typing.List[float] = field(default_factory=list)
    # on CPU, torch's thread count follows the cores other processes leave free (infdiff.threads):
    # on a shared machine a fixed count waits for a busy core at every op
    adapt_threads: bool = True


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    function_space: FunctionSpaceConfig = field(default_factory=FunctionSpaceConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    def mollifier_sigma(self) -> float:
        """diffusion.mollifier_sigma in domain units, "auto" resolved to one training pixel."""
        sigma = self.diffusion.mollifier_sigma
        return 1.0 / self.data.resolution if sigma == "auto" else float(sigma)


def _fail(path, message):
    raise ConfigError(f"config field `{path}`: {message}")


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader (same types, same `<<` merges) that refuses a key repeated in one mapping,
    at any depth, with a ConfigError naming its dotted path, the source and both lines. A key a
    `<<` merge brings in may still be overridden by the mapping's own key, as YAML intends.
    `config_source` (what the text is, for the message) and `config_root` (the dotted path of
    the text's root) are set by `load_yaml`; `prefix` is taken, a yaml.Reader method."""

    config_source = "<YAML text>"
    config_root = ""

    def __init__(self, stream):
        super().__init__(stream)
        self._paths = {}  # node -> its dotted path, set when its parent's keys are checked
        self._checked = set()

    def construct_sequence(self, node, deep=False):
        for i, item in enumerate(node.value):
            self._paths.setdefault(item, f"{self._paths.get(node, self.config_root)}[{i}]")
        return super().construct_sequence(node, deep=deep)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self._check_keys(node)
        return super().construct_mapping(node, deep=deep)

    def flatten_mapping(self, node):
        # SafeLoader's construct_mapping calls this on the mapping and on each one a `<<` merges
        # in, and it rewrites node.value to hold the merged keys too: check the own keys first
        self._check_keys(node)
        super().flatten_mapping(node)

    def _check_keys(self, node):
        if node in self._checked:
            return
        self._checked.add(node)
        parent = self._paths.get(node, self.config_root)
        seen = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # a `<<` merge, not the string '<<'
                key, ident = "<<", ("merge",)
            else:
                key = self.construct_object(key_node)  # cached: construct_mapping reuses it
                ident = ("key", key)  # the dict's equality: `1` and `1.0`, `yes` and `true` collide
            try:
                first = seen.setdefault(ident, key_node)
            except TypeError:  # an unhashable key: construct_mapping refuses it
                continue
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)  # as written
            path = f"{parent}.{name}" if parent else name
            self._paths.setdefault(value_node, path)
            if first is not key_node:
                same = f"; `{first.value}` and `{name}` are the same key" if first.value != name else ""
                _fail(path, f"key `{name}` appears twice in {self.config_source} ({_lines(first, key_node)}{same}); "
                            "YAML would silently keep the last one, so remove one")


def _lines(first, second):
    a, b = first.start_mark, second.start_mark
    if a.line == b.line:  # flow style on one line: {lr: 1, lr: 2}
        return f"line {a.line + 1}, columns {a.column + 1} and {b.column + 1}"
    return f"lines {a.line + 1} and {b.line + 1}"


def load_yaml(text, source="<YAML text>", root=""):
    """yaml.safe_load(text) that refuses a duplicate key (UniqueKeyLoader); `source` names the
    text in that error (a file, a preset), `root` is the dotted path of its root (an override
    `model.fno={...}` reads `model.fno`). The one YAML reader of every config."""
    loader = UniqueKeyLoader(text)
    loader.config_source, loader.config_root = source, root
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _coerce(path, value, kind):
    """value converted to the annotated type `kind`, or ConfigError naming `path`."""
    origin = typing.get_origin(kind)
    if origin is typing.Union:  # a number or a keyword (mollifier_sigma: float | "auto")
        if isinstance(value, str) and value == "auto":
            return value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                _fail(path, f'expected a number or "auto", got {value!r}')
        return _coerce(path, value, float)
    if origin in (list, typing.List):
        (item,) = typing.get_args(kind)
        if not isinstance(value, (list, tuple)):
            _fail(path, f"expected a list, got {value!r}")
        return [_coerce(f"{path}[{i}]", v, item) for i, v in enumerate(value)]
    if kind is bool:
        if not isinstance(value, bool):
            _fail(path, f"expected true/false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, f"expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                _fail(path, f"expected a number, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(path, f"expected a finite number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            _fail(path, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {kind} at {path}")


def _build(cls, values, prefix):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        _fail(prefix or "<root>", f"expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            _fail(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name in names:
        if name not in values:
            continue
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, values[name], f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(f"{prefix}{name}", values[name], kind)
    return cls(**kwargs)


def _check(cfg: Config):
    d, f, m, t = cfg.data, cfg.diffusion, cfg.model, cfg.train
    checks = [
        ("model.family", m.family in FAMILIES, f"must be one of {FAMILIES}, got {m.family!r}"),
        ("data.name", d.name in DATASETS, f"must be one of {DATASETS}, got {d.name!r}"),
        ("data.split", d.split in ("train", "val", "test"), f"must be train, val or test, got {d.split!r}"),
        ("data.channels", d.channels in (1, 3), f"must be 1 or 3, got {d.channels}"),
        ("data.val_fraction", 0 <= d.val_fraction < 1, f"must be in [0, 1), got {d.val_fraction}"),
        ("data.num_workers", d.num_workers >= 0, f"must be >= 0, got {d.num_workers}"),
        ("data.limit", d.limit >= 0, f"must be >= 0, got {d.limit}"),
        ("data.grf_alpha", d.grf_alpha > 1, f"must be > 1 (trace-class in 2-D), got {d.grf_alpha}"),
        ("data.grf_mixture_alpha2", d.grf_mixture_alpha2 > 1, f"must be > 1, got {d.grf_mixture_alpha2}"),
        ("data.grf_tau", d.grf_tau > 0, f"must be > 0, got {d.grf_tau}"),
        ("data.grf_mixture_tau2", d.grf_mixture_tau2 > 0, f"must be > 0, got {d.grf_mixture_tau2}"),
        ("data.grf_mixture_weight", 0 <= d.grf_mixture_weight <= 1, f"must be in [0, 1], got {d.grf_mixture_weight}"),
        ("data.grf_size", d.grf_size >= 1, f"must be >= 1, got {d.grf_size}"),
        ("diffusion.steps", f.steps >= 2, f"must be >= 2, got {f.steps}"),
        ("diffusion.schedule", f.schedule == "cosine", f"only 'cosine' is implemented, got {f.schedule!r}"),
        ("diffusion.boundary", f.boundary in BOUNDARIES, f"must be one of {BOUNDARIES}, got {f.boundary!r}"),
        ("diffusion.noise", f.noise in NOISE_MODES, f"must be one of {NOISE_MODES}, got {f.noise!r}"),
        ("diffusion.wiener_nsr", f.wiener_nsr > 0, f"must be > 0, got {f.wiener_nsr}"),
        ("diffusion.sample_steps", 1 <= f.sample_steps <= f.steps, f"must be in [1, diffusion.steps], got {f.sample_steps}"),
        ("diffusion.sampler", f.sampler in ("ddim", "ddpm"), f"must be ddim or ddpm, got {f.sampler!r}"),
        ("diffusion.fine_grid", f.fine_grid in FINE_GRIDS, f"must be one of {FINE_GRIDS}, got {f.fine_grid!r}"),
        ("diffusion.ddpm_variance", f.ddpm_variance in DDPM_VARIANCES,
         f"must be one of {DDPM_VARIANCES}, got {f.ddpm_variance!r}"),
        ("diffusion.min_snr_gamma", f.min_snr_gamma >= 0, f"must be >= 0 (0: uniform weights), got {f.min_snr_gamma}"),
        ("diffusion.loss_wiener_nsr", f.loss_wiener_nsr >= 0, f"must be >= 0 (0: the plain loss), got {f.loss_wiener_nsr}"),
        ("diffusion.prediction", f.prediction in PREDICTIONS, f"must be one of {PREDICTIONS}, got {f.prediction!r}"),
        ("diffusion.noise_grid", f.noise_grid == 0 or f.noise_grid >= d.resolution,
         f"must be 0 (noise drawn on the sampling grid) or >= data.resolution ({d.resolution}), got {f.noise_grid}"),
        ("diffusion.noise_grid", f.noise_grid == 0 or f.noise == "function",
         f"needs diffusion.noise function (one white-noise measure at every resolution), got {f.noise!r}"),
        ("model.channels", m.channels >= 1, f"must be >= 1, got {m.channels}"),
        ("model.kernel_size", m.kernel_size >= 1 and m.kernel_size % 2 == 1, f"must be odd and >= 1, got {m.kernel_size}"),
        ("model.normalize", m.normalize in NORMALIZE_MODES, f"must be one of {NORMALIZE_MODES}, got {m.normalize!r}"),
        ("model.conv_padding", m.conv_padding in CONV_PADDINGS, f"must be one of {CONV_PADDINGS}, got {m.conv_padding!r}"),
        ("model.sparse_blocks", m.sparse_blocks >= 1, f"must be >= 1, got {m.sparse_blocks}"),
        ("model.mlp_ratio", m.mlp_ratio >= 1, f"must be >= 1, got {m.mlp_ratio}"),
        ("model.knn", m.knn >= 1, f"must be >= 1, got {m.knn}"),
        ("model.unet_channels", m.unet_channels >= 1 and m.unet_channels % m.attention_heads == 0,
         f"must be >= 1 and divisible by model.attention_heads, got {m.unet_channels}"),
        ("model.unet_mults", len(m.unet_mults) >= 2 and all(v >= 1 for v in m.unet_mults),
         f"must list >= 2 positive multipliers (attention runs at the two lowest), got {m.unet_mults}"),
        ("model.unet_patch", m.unet_patch >= 1, f"must be >= 1 (1 = no patch embedding), got {m.unet_patch}"),
        ("model.grid_size", m.grid_size % (body := max(m.unet_patch, 1) * 2 ** (len(m.unet_mults) - 1)) == 0
         and m.grid_size >= body,
         f"must be a multiple of model.unet_patch * 2^(len(unet_mults)-1) = {body}"
         f" (the U-Net's body halves grid_size / unet_patch at each level), got {m.grid_size}"),
        ("model.unet_res_blocks", m.unet_res_blocks >= 1, f"must be >= 1, got {m.unet_res_blocks}"),
        ("model.attention_heads", m.attention_heads >= 1, f"must be >= 1, got {m.attention_heads}"),
        ("model.dropout", 0 <= m.dropout < 1, f"must be in [0, 1), got {m.dropout}"),
        ("model.time_dim", m.time_dim >= 2 and m.time_dim % 2 == 0, f"must be even and >= 2, got {m.time_dim}"),
        ("train.batch_size", t.batch_size >= 1, f"must be >= 1, got {t.batch_size}"),
        ("train.lr", t.lr > 0, f"must be > 0, got {t.lr}"),
        ("train.lr_schedule", t.lr_schedule in LR_SCHEDULES, f"must be one of {LR_SCHEDULES}, got {t.lr_schedule!r}"),
        ("train.warmup_steps", t.warmup_steps >= 0, f"must be >= 0, got {t.warmup_steps}"),
        ("train.weight_decay", t.weight_decay >= 0, f"must be >= 0, got {t.weight_decay}"),
        ("train.steps", t.steps >= 0, f"must be >= 0, got {t.steps}"),
        ("train.max_minutes", t.max_minutes >= 0, f"must be >= 0, got {t.max_minutes}"),
        ("train.coord_fraction", 0 < t.coord_fraction <= 1, f"must be in (0, 1], got {t.coord_fraction}"),
        ("train.grad_clip", t.grad_clip >= 0, f"must be >= 0 (0 = off), got {t.grad_clip}"),
        ("train.ema_decay", 0 <= t.ema_decay < 1, f"must be in [0, 1), got {t.ema_decay}"),
        ("train.precision", t.precision in PRECISIONS, f"must be one of {PRECISIONS}, got {t.precision!r}"),
        ("train.ckpt_every", t.ckpt_every >= 0, f"must be >= 0 (0 = only at the end), got {t.ckpt_every}"),
        ("train.sample_every", t.sample_every >= 0, f"must be >= 0 (0 = never), got {t.sample_every}"),
        ("train.sample_n", t.sample_n >= 1, f"must be >= 1, got {t.sample_n}"),
        ("train.log_every", t.log_every >= 1, f"must be >= 1, got {t.log_every}"),
        ("train.device", t.device in ("auto", "cpu", "cuda"), f"must be auto, cpu or cuda, got {t.device!r}"),
    ]
    for path, ok, message in checks:
        if not ok:
            _fail(path, message)
    if m.family == "fno":
        _check_function_space(cfg)
    _check_levels(cfg)
    if m.autoencoder.enabled:
        _check_autoencoder(cfg)
    if m.conv_padding == "circular":
        _check_circular(cfg)
    if d.resolution < m.kernel_size:
        _fail("data.resolution", f"must be >= model.kernel_size ({m.kernel_size}), got {d.resolution}")
    sigma = cfg.mollifier_sigma()
    if sigma < 0 or 0 < sigma * d.resolution < 0.5:
        _fail("diffusion.mollifier_sigma",
              f"{f.mollifier_sigma} is {sigma * d.resolution:.2f} training pixels (data.resolution {d.resolution}); "
              "a mollifier narrower than half a pixel does not smooth the grid it is trained on, so the model "
              "would not see a resolution-independent function (use >= 0.5 / data.resolution, \"auto\" = 1 pixel, "
              "or 0 for no mollifier)")
    if f.loss_wiener_nsr > 0 and cfg.mollifier_sigma() == 0:
        _fail("diffusion.loss_wiener_nsr", "must be 0 without a mollifier (diffusion.mollifier_sigma 0): there is nothing to undo")
    points = max(1, round(t.coord_fraction * d.resolution**2))
    if points < m.knn:
        _fail("train.coord_fraction", f"gives {points} points per example, fewer than model.knn = {m.knn}")
    return cfg


def _check_autoencoder(cfg: Config):
    a, d = cfg.model.autoencoder, cfg.data
    points = round(a.encoder_fraction * d.resolution**2)
    checks = [
        ("model.autoencoder.enabled", cfg.model.family == "mollified",
         f"needs model.family mollified (the encoder is the first half of the ∞-Diff network), got {cfg.model.family!r}"),
        ("model.autoencoder.latent_dim", a.latent_dim >= 1, f"must be >= 1, got {a.latent_dim}"),
        ("model.autoencoder.encoder_fraction", 0 < a.encoder_fraction <= 1 and points >= cfg.model.knn,
         f"must be in (0, 1] and give >= model.knn ({cfg.model.knn}) points per example, got {a.encoder_fraction} "
         f"({points} points)"),
        ("model.autoencoder.latent_hidden", a.latent_hidden >= 1, f"must be >= 1, got {a.latent_hidden}"),
        ("model.autoencoder.latent_layers", a.latent_layers >= 1, f"must be >= 1, got {a.latent_layers}"),
        ("model.autoencoder.latent_steps", a.latent_steps >= 0, f"must be >= 0 (0 = no latent model), got {a.latent_steps}"),
        ("model.autoencoder.latent_batch", a.latent_batch >= 2, f"must be >= 2, got {a.latent_batch}"),
        ("model.autoencoder.latent_lr", a.latent_lr > 0, f"must be > 0, got {a.latent_lr}"),
        ("model.autoencoder.latent_ema_decay", 0 <= a.latent_ema_decay < 1, f"must be in [0, 1), got {a.latent_ema_decay}"),
        ("model.autoencoder.latent_examples", a.latent_examples >= 0, f"must be >= 0 (0 = all), got {a.latent_examples}"),
        ("model.autoencoder.latent_diffusion_steps", a.latent_diffusion_steps >= 2,
         f"must be >= 2, got {a.latent_diffusion_steps}"),
        ("model.autoencoder.latent_sample_steps", 1 <= a.latent_sample_steps <= a.latent_diffusion_steps,
         f"must be in [1, model.autoencoder.latent_diffusion_steps], got {a.latent_sample_steps}"),
        ("diffusion.fine_grid", cfg.diffusion.fine_grid == "resample",
         f"must be resample in autoencoder mode (the decoder takes one latent z per image, not per sub-grid), "
         f"got {cfg.diffusion.fine_grid!r}"),
    ]
    for path, ok, message in checks:
        if not ok:
            _fail(path, message)


def _check_circular(cfg: Config):
    """model.conv_padding circular: a periodic border for periodic data, on full grids only (the
    sparse convolution's windows do not wrap around), so the network sees no other border."""
    m, t = cfg.model, cfg.train
    why = "model.conv_padding circular runs on full grids only (sparse windows do not wrap around)"
    if cfg.diffusion.boundary != "periodic":
        _fail("model.conv_padding", f"circular needs periodic data (diffusion.boundary periodic), got "
                                    f"diffusion.boundary {cfg.diffusion.boundary!r}")
    if t.coord_fraction != 1 or any(v != 1 for v in t.level_coord_fractions):
        _fail("train.coord_fraction", f"must be 1 (and train.level_coord_fractions all 1): {why}")
    if m.autoencoder.enabled:
        _fail("model.conv_padding", f"circular is not supported in autoencoder mode: {why}, and the encoder "
                                    "reads a subset of the pixels")
    if t.compile:
        _fail("train.compile", f"must be false with model.conv_padding circular: {why}, and under torch.compile "
                               "the network takes the sparse path")


def _check_levels(cfg: Config):
    """train.levels and its companions. The fno family trains on Fourier truncations of the data
    (no level above data.resolution); the mollified family on exact draws of a GRF law at finer
    resolutions (data.resolution first: below it the mollifier would be under half a pixel)."""
    t, r = cfg.train, cfg.data.resolution
    if t.level_schedule not in LEVEL_SCHEDULES:
        _fail("train.level_schedule", f"must be one of {LEVEL_SCHEDULES}, got {t.level_schedule!r}")
    if t.level_batch_sizes and not t.levels:
        _fail("train.level_batch_sizes", "needs train.levels (one batch size per level)")
    if t.level_coord_fractions and not t.levels:
        _fail("train.level_coord_fractions", "needs train.levels (one share of the pixels per level)")
    if not t.levels:
        return
    if any(a >= b for a, b in zip(t.levels, t.levels[1:])):
        _fail("train.levels", f"must be increasing resolutions, got {t.levels}")
    if cfg.model.family == "fno":
        if any(v < 2 or v > r for v in t.levels):
            _fail("train.levels", f"must be increasing resolutions in [2, data.resolution = {r}] (each level is a "
                                  f"Fourier truncation of the data), got {t.levels}")
        if t.level_coord_fractions:
            _fail("train.level_coord_fractions", "must be empty with model.family fno (the operator sees whole grids)")
    else:
        if cfg.data.name not in GRF_DATASETS:
            _fail("train.levels", f"needs data a law can be drawn from at any resolution (grf, grf_mixture) with the "
                                  f"mollified family, got data.name {cfg.data.name!r}")
        if t.levels[0] != r:
            _fail("train.levels", f"must start at data.resolution = {r} with the mollified family (the training "
                                  f"resolution the noise, the mollifier and the kernels are measured in), got {t.levels}")
        if cfg.model.autoencoder.enabled:
            _fail("train.levels", "multilevel training of a diffusion autoencoder is not supported")
        if cfg.diffusion.noise != "function":
            _fail("diffusion.noise", f"must be 'function' with train.levels (the finer levels' noise is the same "
                                     f"measure's discretisation there), got {cfg.diffusion.noise!r}")
    if t.level_batch_sizes and (len(t.level_batch_sizes) != len(t.levels) or min(t.level_batch_sizes) < 1):
        _fail("train.level_batch_sizes", f"must be empty or one batch size >= 1 per level of train.levels "
                                         f"({len(t.levels)}), got {t.level_batch_sizes}")
    if t.level_coord_fractions:
        f = t.level_coord_fractions
        if len(f) != len(t.levels) or not all(0 < v <= 1 for v in f):
            _fail("train.level_coord_fractions", f"must be empty or one share in (0, 1] per level of train.levels "
                                                 f"({len(t.levels)}), got {f}")
        few = [(v, res) for v, res in zip(f, t.levels) if round(v * res * res) < cfg.model.knn]
        if few:
            _fail("train.level_coord_fractions", f"{few[0][0]} of {few[0][1]}^2 pixels is fewer points than "
                                                 f"model.knn = {cfg.model.knn}")


def _check_function_space(cfg: Config):
    """The fields of the fno family, and the settings it cannot honour."""
    o, s, t = cfg.model.fno, cfg.function_space, cfg.train
    grid_low = 2 * o.modes - 1
    checks = [
        ("model.fno.width", o.width >= 1, f"must be >= 1, got {o.width}"),
        ("model.fno.modes", o.modes >= 1, f"must be >= 1, got {o.modes}"),
        ("model.fno.depth", o.depth >= 1, f"must be >= 1, got {o.depth}"),
        ("model.fno.grid", o.grid == 0 or o.grid >= grid_low,
         f"must be 0 (= 2 * modes) or >= 2 * model.fno.modes - 1 = {grid_low} so that it holds every mode, got {o.grid}"),
        ("model.fno.time_dim", o.time_dim >= 2 and o.time_dim % 2 == 0, f"must be even and >= 2, got {o.time_dim}"),
        ("function_space.noise", s.noise in FUNCTION_NOISES, f"must be one of {FUNCTION_NOISES}, got {s.noise!r}"),
        ("function_space.alpha", 1 < s.alpha <= 1e30, f"must be in (1, 1e30] so that C is trace class in 2-D, got {s.alpha}"),
        ("function_space.tau", s.tau > 0, f"must be > 0, got {s.tau}"),
        ("function_space.beta_min", s.beta_min > 0, f"must be > 0, got {s.beta_min}"),
        ("function_space.beta_max", s.beta_max >= s.beta_min,
         f"must be >= function_space.beta_min ({s.beta_min}), got {s.beta_max}"),
        ("function_space.sampler", s.sampler in FUNCTION_SAMPLERS, f"must be one of {FUNCTION_SAMPLERS}, got {s.sampler!r}"),
        ("function_space.sample_steps", s.sample_steps >= 1, f"must be >= 1, got {s.sample_steps}"),
        ("train.coord_fraction", t.coord_fraction == 1,
         f"must be 1 with model.family fno (the operator sees whole grids, not a subset of points), got {t.coord_fraction}"),
        ("diffusion.prediction", cfg.diffusion.prediction == "eps",
         f"must be eps with model.family fno (its network predicts the noise of the function_space SDE), "
         f"got {cfg.diffusion.prediction!r}"),
        ("train.precision", t.precision == "fp32",
         f"must be fp32 with model.family fno (torch.fft has no bf16 path on the CPU), got {t.precision!r}"),
    ]
    for path, ok, message in checks:
        if not ok:
            _fail(path, message)


def from_dict(values) -> Config:
    """A validated Config from a nested mapping (missing keys keep their defaults)."""
    return _check(_build(Config, values, ""))


def _presets():
    return importlib.resources.files(__package__).joinpath("configs")


def preset_names():
    """Names of the packaged presets (mnist, tiny, ...)."""
    return sorted(p.name[: -len(".yaml")] for p in _presets().iterdir() if p.name.endswith(".yaml"))


def _config_text(path):
    """The YAML text `path` names and what it is, for messages: a file on disk, else a packaged
    preset given by its name ("mnist") or by its source-checkout path ("configs/mnist.yaml"),
    which an installed package has no folder for."""
    if os.path.isfile(path):
        with open(path) as fh:
            return fh.read(), f"config file {path}"
    folder, name = os.path.split(os.path.normpath(path))
    name = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if folder in ("", "configs") and name in preset_names():
        return _presets().joinpath(f"{name}.yaml").read_text(), f"preset {name} (infdiff/configs/{name}.yaml)"
    raise ConfigError(f"config file not found: {path} (a YAML file, or a preset: {', '.join(preset_names())})")


def load_config(path, overrides=None) -> Config:
    """Config from a YAML file or a preset (see `_config_text`), with optional dotted
    overrides {"train.steps": 10}."""
    text, source = _config_text(path)
    try:
        values = load_yaml(text, source) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                _fail(dotted, "cannot override inside a non-mapping")
        node[leaf] = value
    return from_dict(values)


def parse_override(text):
    """'train.steps=10' -> ('train.steps', 10), the value parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.field=value")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), load_yaml(raw, f"override {text!r}", key.strip())
    except yaml.YAMLError as err:  # a SafeLoader: a !!python tag is refused here, never run
        raise ConfigError(f"override {key.strip()}: value {raw!r} is not valid YAML ({err.__class__.__name__})") from None
