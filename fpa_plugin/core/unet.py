"""The convolutional U-Net that refines an FPA image (Irie & Schmidhuber, ICLR 2023, Sec. 3.2, Eq. 10:
W' = UNet(W_T); Appendix C.1: "three down/up-sampling ResNet blocks with a total of 8 M parameters").

The authors used lucidrains/denoising-diffusion-pytorch's `Unet` with the time embedding removed (reference doc,
section 3): an image-to-image network, shape preserving, with no output activation. At dim 64, dim_mults (1, 2, 4)
and 3 channels it has 7,985,475 parameters at any resolution. PyTorch's default init, as the reference's.

    init conv 7x7 -> r
    down level i:  ResBlock(d_{i-1} -> d_i), ResBlock, Residual(PreNorm(LinearAttention)) -> skip_i, Conv 4x4 s2
                   (no downsampling at the last level)
    middle:        ResBlock, Residual(PreNorm(softmax Attention)), ResBlock
    up level i:    cat(x, skip_i), ResBlock(2 d_i -> d_{i-1}), ResBlock, Residual(PreNorm(LinearAttention)),
                   ConvTranspose 4x4 s2 (none at the top level)
    out:           cat(x, r), ResBlock(2 d_0 -> d_0), Conv 1x1 -> channels

Pure PyTorch: nothing here knows about StyleGAN3.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from fpa_plugin.core.attention import ChanNorm, PreNorm
from fpa_plugin.core.lightgan import Residual

#----------------------------------------------------------------------------
# ResNet block: [Conv 3x3 -> GroupNorm -> SiLU] x 2, plus the input (through a 1x1 conv if the widths differ).

class ConvBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.GroupNorm(groups, cout)

    def forward(self, x):
        return F.silu(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.block1 = ConvBlock(cin, cout, groups)
        self.block2 = ConvBlock(cout, cout, groups)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        return self.block2(self.block1(x)) + self.skip(x)

#----------------------------------------------------------------------------
# Global linear attention of the U-Net's levels. Not the discriminator's `attention.LinearAttention`: no local
# branch, no GELU, one projection for q, k, v, and a channel LayerNorm after the output projection.

class LinearAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.heads, self.dim_head, self.scale = heads, dim_head, dim_head ** -0.5
        inner = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, inner * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(inner, dim, 1), ChanNorm(dim))

    def forward(self, x):
        B, _, H, W = x.shape
        q, k, v = (t.reshape(B * self.heads, self.dim_head, H * W) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=1) * self.scale                               # (B*h, d, HW): softmax over features
        k = k.softmax(dim=2)                                            # softmax over positions
        context = torch.bmm(k, v.transpose(1, 2))                       # (B*h, d, e): sum_n k_n v_n^T
        out = torch.bmm(context.transpose(1, 2), q)                     # (B*h, e, HW): context^T q_n
        return self.to_out(out.reshape(B, self.heads * self.dim_head, H, W))

#----------------------------------------------------------------------------
# Full softmax attention over all positions (the middle of the U-Net, where there are fewest).

class SoftmaxAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.heads, self.dim_head, self.scale = heads, dim_head, dim_head ** -0.5
        inner = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, inner * 3, 1, bias=False)
        self.to_out = nn.Conv2d(inner, dim, 1)

    def forward(self, x):
        B, _, H, W = x.shape
        q, k, v = (t.reshape(B * self.heads, self.dim_head, H * W) for t in self.to_qkv(x).chunk(3, dim=1))
        sim = torch.bmm(q.transpose(1, 2) * self.scale, k)             # (B*h, HW_i, HW_j)
        attn = sim.softmax(dim=2)
        out = torch.bmm(v, attn.transpose(1, 2))                        # (B*h, d, HW_i)
        return self.to_out(out.reshape(B, self.heads * self.dim_head, H, W))

#----------------------------------------------------------------------------
# One level of the U-Net: two ResNet blocks, linear attention, and a resampling conv (or none).

class Level(nn.Module):
    def __init__(self, cin, cout, groups, attn_heads, attn_dim_head, resample):
        super().__init__()
        self.block1 = ResBlock(cin, cout, groups)
        self.block2 = ResBlock(cout, cout, groups)
        self.attn = Residual(PreNorm(cout, LinearAttention(cout, attn_heads, attn_dim_head)))
        self.resample = resample

    def forward(self, x):                                               # -> (features before resampling, after)
        x = self.attn(self.block2(self.block1(x)))
        return x, self.resample(x)

#----------------------------------------------------------------------------
# The U-Net. `UNET_SIZES` name capacities: 'paper' is the authors' (7,985,475 parameters with 3 levels and 3
# channels); the smaller ones keep its shape with fewer channels and smaller attention, for CPU runs and tests.

UNET_SIZES = {
    'paper': dict(dim=64, attn_heads=4, attn_dim_head=32),
    'small': dict(dim=16, attn_heads=2, attn_dim_head=16),
    'tiny':  dict(dim=8, attn_heads=1, attn_dim_head=8),
}

class UNet(nn.Module):
    def __init__(self,
        channels        = 3,            # Image channels, in and out.
        dim             = 64,           # Channels of the init conv and the unit of dim_mults.
        dim_mults       = (1, 2, 4),    # Channels of each level, in units of dim; one level per entry.
        groups          = 8,            # GroupNorm groups in the ResNet blocks (divides every level's channels).
        attn_heads      = 4,            # Heads of every attention layer.
        attn_dim_head   = 32,           # Channels per attention head.
    ):
        super().__init__()
        dim_mults = tuple(dim_mults)
        if channels < 1 or dim < 1 or attn_heads < 1 or attn_dim_head < 1 or groups < 1:
            raise ValueError('UNet channels, dim, groups, attn_heads and attn_dim_head must be positive')
        if not dim_mults or any(int(m) != m or m < 1 for m in dim_mults):
            raise ValueError(f'UNet dim_mults must be a non-empty tuple of positive integers, got {dim_mults}')
        widths = [dim] + [dim * int(m) for m in dim_mults]              # init conv, then one per level
        if any(w % groups for w in widths):
            raise ValueError(f'UNet widths {widths} (dim * dim_mults) must all be divisible by groups={groups}')
        self.channels, self.levels = channels, len(dim_mults)
        attn = dict(attn_heads=attn_heads, attn_dim_head=attn_dim_head)

        self.init_conv = nn.Conv2d(channels, dim, 7, padding=3)
        pairs = list(zip(widths[:-1], widths[1:]))                      # (d_{i-1}, d_i) per level
        last = len(pairs) - 1
        self.downs = nn.ModuleList([
            Level(cin, cout, groups, **attn, resample=nn.Conv2d(cout, cout, 4, stride=2, padding=1)
                  if i < last else nn.Identity())
            for i, (cin, cout) in enumerate(pairs)])

        mid = widths[-1]
        self.mid_block1 = ResBlock(mid, mid, groups)
        self.mid_attn = Residual(PreNorm(mid, SoftmaxAttention(mid, attn_heads, attn_dim_head)))
        self.mid_block2 = ResBlock(mid, mid, groups)

        # Up levels from the bottom: the input is cat(x, skip) = 2 d_i, the output d_{i-1}.
        self.ups = nn.ModuleList([
            Level(cout * 2, cin, groups, **attn, resample=nn.ConvTranspose2d(cin, cin, 4, stride=2, padding=1)
                  if i < last else nn.Identity())
            for i, (cin, cout) in enumerate(reversed(pairs))])

        self.final_block = ResBlock(dim * 2, dim, groups)
        self.final_conv = nn.Conv2d(dim, channels, 1)

    def forward(self, x):                                               # x (B, C, H, W) -> (B, C, H, W)
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f'UNet expects images (B, {self.channels}, H, W), got {tuple(x.shape)}')
        factor = 2 ** (self.levels - 1)
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f'UNet with {self.levels} levels needs H and W divisible by {factor}, '
                             f'got {x.shape[2]}x{x.shape[3]}')
        x = self.init_conv(x)
        r, skips = x, []
        for level in self.downs:
            skip, x = level(x)
            skips.append(skip)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x)))
        for level in self.ups:
            x = level(torch.cat([x, skips.pop()], dim=1))[1]
        return self.final_conv(self.final_block(torch.cat([x, r], dim=1)))

#----------------------------------------------------------------------------
# Widths and levels for an image size. At <= 64 px: the paper's three levels (dim 64: 64/128/256 channels, the
# same 7,985,475-parameter network at every such size). Above 64 px, one more level per doubling, on top, so that
# the bottleneck, where the full softmax attention runs over every position, stays at 16x16 (with three levels
# fixed it would hold (res/4)^4 attention weights per head: 1 G at 512 px). Each added level has half the channels
# of the one below (floor dim/4, and at least 8 for GroupNorm), so every level costs about the same FLOPs
# (res_l^2 * width_l^2) and the total grows with the number of levels, not with the pixels:
#   64 px: 64/128/256;  128 px: 32/64/128/256;  256 px: 16/32/64/128/256;  1024 px: 16/16/16/32/64/128/256.

def unet_kwargs_for(resolution, size='paper'):
    """UNet keyword arguments (dim, dim_mults, attn_heads, attn_dim_head) for a square power-of-two image."""
    if size not in UNET_SIZES:
        raise ValueError(f'Unknown U-Net size {size!r}: choose one of {", ".join(UNET_SIZES)}')
    log2 = int(math.log2(resolution)) if resolution >= 1 else -1
    if resolution != 2 ** log2 or resolution < 4:
        raise ValueError(f'unet_kwargs_for needs a power-of-two resolution >= 4, got {resolution}')
    kwargs = dict(UNET_SIZES[size])
    dim = kwargs.pop('dim')
    floor = max(8, dim // 4)
    extra = max(0, log2 - 6)                                            # levels above the paper's three
    widths = [max(floor, dim >> i) for i in range(extra, 0, -1)] + [dim, 2 * dim, 4 * dim]
    return dict(kwargs, dim=widths[0], dim_mults=tuple(w // widths[0] for w in widths))

#----------------------------------------------------------------------------
