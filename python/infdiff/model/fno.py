"""A Fourier neural operator for the function-space score: F(u_t, t) -> an estimate of the noise,
for periodic fields u_t (B, C, H, W) on the unit square at any resolution.

Resolution consistency is exact, not approximate. A textbook FNO applies its pointwise
nonlinearity on the input grid, so its output depends on the grid through aliasing. Here the
input is reduced to its first `modes` Fourier modes, every nonlinear layer runs on one fixed
internal grid of `grid` x `grid` points, and the result is brought back as a band-limited
function evaluated on the caller's grid; a linear pointwise path from the input carries the
frequencies above the band. Both parts commute with Fourier resampling, so the same weights on
a Fourier-upsampled band-limited input give the Fourier-upsampled output (tests/pipeline/test_fno.py).
The cost of the nonlinear part is the same at every resolution.

Why torch.fft and not the project's spectral kernels (infdiff_kernels mollify/wiener/q_sample):
those apply one fixed real, isotropic multiplier per mode (a Gaussian blur or its Wiener
inverse) with reflect or periodic boundaries; a spectral convolution needs a learned complex
channel-mixing matrix per mode, gradients to those weights, and mode truncation, none of which
the kernels offer. Their periodic path is an rfft2 too, so nothing would be gained by routing
through them."""
import torch
from torch import nn

from .sparse import timestep_embedding


def band_limit(u, modes):
    """Fourier coefficients of u (..., H, W) with |kx| < modes and ky < modes, as a (..., 2 modes - 1,
    modes) complex tensor (kx ordered 0..modes-1, -(modes-1)..-1) in units that do not depend on the
    grid (rfft2 / (H W)). Modes the grid does not resolve strictly below its Nyquist frequency are zero,
    so a band-limited function gives the same coefficients on every grid fine enough to hold it."""
    h, w = u.shape[-2:]
    coeff = torch.fft.rfft2(u, norm="forward")
    out = coeff.new_zeros(u.shape[:-2] + (2 * modes - 1, modes))
    kx_max = min(modes - 1, (h - 1) // 2)  # strictly below Nyquist: the Nyquist row is not a real mode pair
    ky_max = min(modes - 1, (w - 1) // 2)
    out[..., :kx_max + 1, :ky_max + 1] = coeff[..., :kx_max + 1, :ky_max + 1]
    if kx_max > 0:
        out[..., 2 * modes - 1 - kx_max:, :ky_max + 1] = coeff[..., h - kx_max:, :ky_max + 1]
    return out


def evaluate_band(coeff, size):
    """The real function with band-limited coefficients `coeff` (..., 2 modes - 1, modes) (layout of
    band_limit) sampled on a grid of `size` (H, W); modes the grid cannot hold are dropped."""
    h, w = size
    modes = coeff.shape[-1]
    full = coeff.new_zeros(coeff.shape[:-2] + (h, w // 2 + 1))
    kx_max = min(modes - 1, (h - 1) // 2)
    ky_max = min(modes - 1, (w - 1) // 2)
    full[..., :kx_max + 1, :ky_max + 1] = coeff[..., :kx_max + 1, :ky_max + 1]
    if kx_max > 0:
        full[..., h - kx_max:, :ky_max + 1] = coeff[..., 2 * modes - 1 - kx_max:, :ky_max + 1]
    return torch.fft.irfft2(full, s=(h, w), norm="forward")


def fourier_resample(u, size):
    """u (..., H, W) as the band-limited periodic function of its modes strictly below the Nyquist
    frequency of both grids, sampled on a grid of `size` (h, w): Fourier truncation going down,
    exact trigonometric interpolation going up."""
    modes = max(min(u.shape[-2], size[0]), min(u.shape[-1], size[1])) // 2 + 1
    return evaluate_band(band_limit(u, modes), size)


class SpectralConv2d(nn.Module):
    """v (B, C_in, G, G) -> (B, C_out, G, G): per Fourier mode with |kx| < modes, ky < modes, a
    learned complex C_in x C_out matrix; every other mode is zero (mode truncation)."""

    def __init__(self, in_channels, out_channels, modes):
        super().__init__()
        self.modes = modes
        scale = 1.0 / (in_channels * out_channels)
        # (C_in, C_out, 2 modes - 1, modes, 2): real and imaginary parts, kx laid out as in band_limit
        self.weight = nn.Parameter(scale * torch.randn(in_channels, out_channels, 2 * modes - 1, modes, 2))

    def forward(self, v):
        """v (B, C_in, G1, G2) -> (B, C_out, G1, G2)."""
        coeff = band_limit(v, self.modes)
        mixed = torch.einsum("bixy,ioxy->boxy", coeff, torch.view_as_complex(self.weight))
        return evaluate_band(mixed, v.shape[-2:])


class FNOBlock(nn.Module):
    """One Fourier layer on the internal grid: GELU(K v + W v + b(t)), K spectral, W a 1x1 conv,
    b(t) a per-channel shift from the time embedding."""

    def __init__(self, width, modes, time_dim):
        super().__init__()
        self.spectral = SpectralConv2d(width, width, modes)
        self.pointwise = nn.Conv2d(width, width, 1)
        self.time_shift = nn.Linear(time_dim, width)

    def forward(self, v, temb):
        """v (B, width, G, G), temb (B, time_dim) -> (B, width, G, G)."""
        shift = self.time_shift(temb)[:, :, None, None]
        return nn.functional.gelu(self.spectral(v) + self.pointwise(v) + shift)


class FourierNeuralOperator(nn.Module):
    """F(u (B, C, H, W), t (B,) in [0, 1]) -> (B, C, H, W).

    Band part: the first `modes` modes of u, evaluated on the internal `grid` x `grid` grid, go
    through a 1x1 lifting to `width` channels, `depth` FNOBlocks and a 1x1 two-layer projection,
    and the result's first `modes` modes are evaluated on (H, W). Pointwise part: a 1x1 linear
    map of u with a per-channel gain from the time embedding (linear in u, so it commutes with
    Fourier resampling). Time enters through a sinusoidal embedding of 1000 t."""

    def __init__(self, channels=1, width=32, modes=12, depth=4, grid=None, time_dim=64):
        super().__init__()
        for name, value, low in (("channels", channels, 1), ("width", width, 1), ("modes", modes, 1),
                                 ("depth", depth, 1), ("time_dim", time_dim, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        grid = 2 * modes if grid is None else grid
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2 * modes - 1:
            raise ValueError(f"grid must be an int >= 2 * modes - 1 = {2 * modes - 1} so that it holds every "
                             f"mode, got {grid!r}")
        if time_dim % 2:
            raise ValueError(f"time_dim must be even (cosines and sines), got {time_dim}")
        self.channels, self.modes, self.grid = channels, modes, grid
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.lift = nn.Conv2d(channels, width, 1)
        self.blocks = nn.ModuleList(FNOBlock(width, modes, time_dim) for _ in range(depth))
        self.project = nn.Sequential(nn.Conv2d(width, 2 * width, 1), nn.GELU(), nn.Conv2d(2 * width, channels, 1))
        self.skip = nn.Conv2d(channels, channels, 1, bias=False)
        self.skip_gain = nn.Linear(time_dim, channels)

    @classmethod
    def from_options(cls, options):
        """The operator of a mapping of constructor arguments (e.g. a config section); an unknown
        key is an error naming it rather than being ignored."""
        known = ("channels", "width", "modes", "depth", "grid", "time_dim")
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown FNO option(s) {unknown}; known: {list(known)}")
        return cls(**options)

    def forward(self, u, t):
        if u.dim() != 4 or u.shape[1] != self.channels:
            raise ValueError(f"u must have shape (B, {self.channels}, H, W), got {tuple(u.shape)}")
        if t.dim() != 1 or t.shape[0] != u.shape[0]:
            raise ValueError(f"t must have shape ({u.shape[0]},), got {tuple(t.shape)}")
        # the sinusoidal table is built in float32; cast it so a float64 model stays float64
        temb = self.time_mlp(timestep_embedding(t.float() * 1000.0, self.time_dim).to(u.dtype))
        v = evaluate_band(band_limit(u, self.modes), (self.grid, self.grid))
        v = self.lift(v)
        for block in self.blocks:
            v = block(v, temb)
        band = evaluate_band(band_limit(self.project(v), self.modes), u.shape[-2:])
        gain = 1.0 + self.skip_gain(temb)[:, :, None, None]
        return band + gain * self.skip(u)

    def extra_repr(self):
        return f"modes={self.modes}, grid={self.grid}"


__all__ = ["FNOBlock", "FourierNeuralOperator", "SpectralConv2d", "band_limit", "evaluate_band", "fourier_resample"]
