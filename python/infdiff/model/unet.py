"""A small grid U-Net in the style of Nichol & Dhariwal (residual blocks with time
conditioning, self-attention and dropout at the two lowest resolutions)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _groups(channels):
    for g in (8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1


class ResBlock(nn.Module):
    def __init__(self, cin, cout, time_dim, dropout):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(time_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        gain, shift = self.time(F.silu(temb))[..., None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + gain) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, channels, heads):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, temb=None):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


def run_blocks(blocks, h, temb):
    """h through a list of layers, the time embedding given to those that take it."""
    for block in blocks:
        h = block(h, temb) if isinstance(block, (ResBlock, Attention)) else block(h)
    return h


class UNetDownPath(nn.Module):
    """The U-Net's first half: (B, cin, G, G) -> the features at its lowest resolution
    (B, out_channels, G / (patch 2^(levels-1)), ...) and the skips the up path takes; len(mults)
    levels, attention and dropout at the two lowest. The semantic encoder runs it alone.

    patch p > 1 (model.unet_patch): the input convolution is a p x p patch embedding of stride p,
    so every level runs on a grid p times coarser and costs about 1 / p^2 as much; p = 1 is
    the 3 x 3 convolution of checkpoints written before the field (same names and shapes)."""

    def __init__(self, cin, channels, mults, res_blocks, heads, dropout, time_dim, patch=1):
        super().__init__()
        levels = len(mults)
        self.attn_levels = {levels - 2, levels - 1}
        self.inp = nn.Conv2d(cin, channels, 3, padding=1) if patch == 1 else nn.Conv2d(cin, channels, patch, stride=patch)
        self.down = nn.ModuleList()
        self.skip_channels = [channels]
        ch = channels
        for i, m in enumerate(mults):
            for _ in range(res_blocks):
                drop = dropout if i in self.attn_levels else 0.0
                blocks = [ResBlock(ch, channels * m, time_dim, drop)]
                ch = channels * m
                if i in self.attn_levels:
                    blocks.append(Attention(ch, heads))
                self.down.append(nn.ModuleList(blocks))
                self.skip_channels.append(ch)
            if i != levels - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                self.skip_channels.append(ch)
        self.out_channels = ch

    def forward(self, x, temb):
        h = self.inp(x)
        hs = [h]
        for blocks in self.down:
            h = run_blocks(blocks, h, temb)
            hs.append(h)
        return h, hs


class GridUNet(UNetDownPath):
    """(B, cin, G, G) -> (B, cout, G, G): the down path, a middle block and the up path.

    It extends UNetDownPath rather than holding one so that its weights keep the names (and
    the optimizer its parameters the order) of checkpoints written before the split. With
    patch p > 1 the output convolution gives p^2 cout channels at G / p, which a pixel shuffle
    turns into cout channels at G (the inverse of the patch embedding)."""

    def __init__(self, cin, cout, channels, mults, res_blocks, heads, dropout, time_dim, patch=1):
        super().__init__(cin, channels, mults, res_blocks, heads, dropout, time_dim, patch)
        skips = list(self.skip_channels)
        ch = self.out_channels
        self.mid = nn.ModuleList([ResBlock(ch, ch, time_dim, dropout), Attention(ch, heads), ResBlock(ch, ch, time_dim, dropout)])
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mults))):
            for j in range(res_blocks + 1):
                drop = dropout if i in self.attn_levels else 0.0
                blocks = [ResBlock(ch + skips.pop(), channels * m, time_dim, drop)]
                ch = channels * m
                if i in self.attn_levels:
                    blocks.append(Attention(ch, heads))
                if i != 0 and j == res_blocks:
                    blocks.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    blocks.append(nn.Conv2d(ch, ch, 3, padding=1))
                self.up.append(nn.ModuleList(blocks))
        out = [nn.GroupNorm(_groups(ch), ch), nn.SiLU(), nn.Conv2d(ch, cout * patch * patch, 3, padding=1)]
        self.out = nn.Sequential(*out, *([nn.PixelShuffle(patch)] if patch > 1 else []))

    def forward(self, x, temb):
        h, hs = super().forward(x, temb)
        h = run_blocks(self.mid, h, temb)
        for blocks in self.up:
            h = run_blocks(blocks, torch.cat([h, hs.pop()], 1), temb)
        return self.out(h)
