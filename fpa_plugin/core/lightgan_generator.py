"""The LightGAN generator (Liu et al. 2021, "Towards Faster and Stabilized GAN Training for High-fidelity Few-shot
Image Synthesis"), as lucidrains/lightweight-gan 0.23.3 builds it and the FPA paper trains it as its LightGAN
baseline (the authors' `--model_type base`: latent 256, fmap_max 512, fmap_inverse_coef 12, attention at 32x32,
global-context SLE, BatchNorm; 20,988,039 parameters at 64x64).

    z (B, latent) -> ConvTranspose 4x4 -> BatchNorm -> GLU -> L2-normalise over channels     (B, latent, 4, 4)
    per doubling:  [x += PreNorm(LinearAttention)(x) at attn_res]
                   nearest x2 -> blur -> conv 4x4 ('same') -> + w * noise -> BatchNorm -> GLU
                   skip-layer excitation: the 16/32/64/128 px features gate the 128/256/512/1024 px ones
    out:           conv 3x3 -> channels, linear (the reference has no output activation)

Skip-layer excitation (SLE) pairs feature maps 8x apart in width, so at 64x64 the reference builds none.
Pure PyTorch: nothing here knows about StyleGAN3. Init: the reference's kaiming-normal on every Conv2d weight.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from fpa_plugin.core.attention import LinearAttention, PreNorm
from fpa_plugin.core.lightgan import Blur, Residual

#----------------------------------------------------------------------------
# Per-pixel noise, one learned strength per layer (zero at init).

class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise_mode='random'):
        if noise_mode == 'none':
            return x
        B, _, H, W = x.shape
        return x + self.weight * torch.randn(B, 1, H, W, device=x.device, dtype=x.dtype)

#----------------------------------------------------------------------------
# Upsampling block: nearest x2, blur, 4x4 conv with 'same' padding (2 before, 1 after), noise, BatchNorm, GLU.

class UpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.blur = Blur()
        self.conv = nn.Conv2d(cin, cout * 2, 4)
        self.noise = NoiseInjection()
        self.norm = nn.BatchNorm2d(cout * 2)

    def forward(self, x, noise_mode='random'):                          # (B, cin, H, W) -> (B, cout, 2H, 2W)
        x = self.blur(F.interpolate(x, scale_factor=2, mode='nearest'))
        x = self.conv(F.pad(x, (2, 1, 2, 1)))
        return F.glu(self.norm(self.noise(x, noise_mode)), dim=1)

#----------------------------------------------------------------------------
# Skip-layer excitation with a global-context pooling (Cao et al. 2019): a softmax-weighted spatial average of
# the low-resolution features -> 1x1 conv, leaky ReLU, 1x1 conv, sigmoid -> a per-channel gate (B, cout, 1, 1).

class GlobalContextSLE(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.to_k = nn.Conv2d(cin, 1, 1)
        hidden = max(3, cout // 2)
        self.net = nn.Sequential(nn.Conv2d(cin, hidden, 1), nn.LeakyReLU(0.1), nn.Conv2d(hidden, cout, 1), nn.Sigmoid())

    def forward(self, x):
        weights = self.to_k(x).flatten(2).softmax(dim=2)                # (B, 1, HW)
        pooled = torch.bmm(x.flatten(2), weights.transpose(1, 2))       # (B, cin, 1): sum_n w_n x_n
        return self.net(pooled.unsqueeze(-1))                           # (B, cout, 1, 1)

#----------------------------------------------------------------------------
# One doubling of the resolution, with its optional attention (before) and SLE source (after).

class GenLayer(nn.Module):
    def __init__(self, cin, cout, attn=None, sle=None, sle_target=None):
        super().__init__()
        self.attn = Residual(attn) if attn is not None else nn.Identity()
        self.up = UpBlock(cin, cout)
        self.sle = sle                                                  # gate for the features at sle_target px
        self.sle_target = sle_target

    def forward(self, x, noise_mode='random'):
        return self.up(self.attn(x), noise_mode)

#----------------------------------------------------------------------------
# The generator. `GEN_SIZES` name capacities: 'paper' is the reference's baseline G (20,988,039 parameters at
# 64x64); the smaller ones keep its shape with fewer channels, for CPU runs and tests (see DISC_SIZES).

GEN_SIZES = {
    'paper': dict(latent_dim=256, fmap_max=512, fmap_inverse_coef=12, attn_heads=8, attn_dim_head=64),
    'small': dict(latent_dim=128, fmap_max=256, fmap_inverse_coef=11, attn_heads=4, attn_dim_head=32),
    'tiny':  dict(latent_dim=32, fmap_max=64, fmap_inverse_coef=9, attn_heads=2, attn_dim_head=16),
}

SLE_PAIRS = ((16, 128), (32, 256), (64, 512), (128, 1024))              # (source px, target px), as the reference

class LightGANGenerator(nn.Module):
    def __init__(self,
        latent_dim      = 256,      # Size of z; also the channels of the 4x4 features.
        resolution      = 64,       # Image size (a power of two, >= 8).
        channels        = 3,        # Image channels.
        fmap_max        = 512,      # Most feature maps in a layer.
        fmap_inverse_coef = 12,     # Features at 2^(n+1) px: min(2^(coef - n), fmap_max); 3 from 512 px on.
        attn_res        = (32,),    # Input widths of the layers that get attention first; others are ignored.
        attn_heads      = 8,        # Attention heads.
        attn_dim_head   = 64,       # Channels per attention head.
        attn_impl       = 'auto',   # Neighbourhood attention implementation (see attention.py).
        out_tanh        = False,    # tanh on the image; False = linear, as the reference.
    ):
        super().__init__()
        log2 = int(math.log2(resolution)) if resolution >= 1 else -1
        if resolution != 2 ** log2 or resolution < 8:
            raise ValueError(f'The LightGAN generator needs a power-of-two resolution >= 8, got {resolution}')
        if latent_dim < 1 or channels < 1 or fmap_max < 1:
            raise ValueError('latent_dim, channels and fmap_max must be positive')
        self.latent_dim, self.resolution, self.channels, self.out_tanh = latent_dim, resolution, channels, out_tanh

        self.init = nn.Sequential(nn.ConvTranspose2d(latent_dim, latent_dim * 2, 4), nn.BatchNorm2d(latent_dim * 2),
                                  nn.GLU(dim=1))                        # (B, latent, 1, 1) -> (B, latent, 4, 4)

        # Layer n takes 2^n px to 2^(n+1) px. Its output channels: min(2^(coef - n), fmap_max), but 3 at >= 512 px
        # (the reference's cheap top layers).
        widths = {n: 3 if n >= 8 else min(2 ** (fmap_inverse_coef - n), fmap_max) for n in range(2, log2)}
        out_ch = {2 ** (n + 1): widths[n] for n in widths}              # px -> channels of the features there
        sle_from = {src: dst for src, dst in SLE_PAIRS if dst <= resolution}
        self.layers = nn.ModuleList()
        cin = latent_dim
        for n in range(2, log2):
            cout, width = widths[n], 2 ** n
            attn = PreNorm(cin, LinearAttention(cin, attn_dim_head, attn_heads, impl=attn_impl)) \
                if width in attn_res else None
            src = 2 * width                                             # this layer's output width
            sle = GlobalContextSLE(cout, out_ch[sle_from[src]]) if src in sle_from else None
            self.layers.append(GenLayer(cin, cout, attn, sle, sle_from.get(src)))
            cin = cout
        self.out_conv = nn.Conv2d(cin, channels, 3, padding=1)

        for m in self.modules():                                        # the reference's init (ConvTranspose2d keeps
            if isinstance(m, nn.Conv2d):                                # PyTorch's default: not an nn.Conv2d)
                nn.init.kaiming_normal_(m.weight, a=0, mode='fan_in', nonlinearity='leaky_relu')

    def forward(self, z, noise_mode='random'):                          # z (B, latent) -> (B, C, res, res)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f'LightGANGenerator expects z of shape (B, {self.latent_dim}), got {tuple(z.shape)}')
        if noise_mode not in ('random', 'none'):
            raise ValueError(f'Unknown noise_mode {noise_mode!r}: choose random or none')
        x = F.normalize(self.init(z[:, :, None, None]), dim=1)         # (B, latent, 4, 4), unit norm per pixel
        gates = {}                                                      # target px -> (B, C, 1, 1)
        for layer in self.layers:
            x = layer(x, noise_mode)
            if layer.sle is not None:
                gates[layer.sle_target] = layer.sle(x)
            if x.shape[-1] in gates:
                x = x * gates.pop(x.shape[-1])
        x = self.out_conv(x)
        return torch.tanh(x) if self.out_tanh else x

#----------------------------------------------------------------------------
