"""The LightGAN-style discriminator and losses the FPA paper trains with (Liu et al. 2021, as implemented by
lucidrains/lightweight-gan 0.23.3 and used by the authors' code; reference doc, section 4).

Sign convention: StyleGAN3's, high logits = real. The reference uses the opposite sign; the losses below are
the reference's with D' = -D, so they are the same objective.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from fpa_plugin.core.attention import LinearAttention, PreNorm

#----------------------------------------------------------------------------
# Small blocks.

class Blur(nn.Module):
    """[1, 2, 1]^2 / 16 low-pass filter (reflect padding), used by the LightGAN baseline's D (antialias=True)."""
    def __init__(self):
        super().__init__()
        f = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer('f', (f[:, None] * f[None, :] / 16)[None, None])   # (1, 1, 3, 3)

    def forward(self, x):
        C = x.shape[1]
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode='reflect'), self.f.expand(C, 1, 3, 3), groups=C)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class SumBranches(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return sum(b(x) for b in self.branches)


def down_block(cin, cout, blur):
    """Residual downsampling block: (conv 4x4 s2, lrelu, conv 3x3, lrelu) + (avgpool, conv 1x1, lrelu)."""
    pre = [Blur()] if blur else []
    return SumBranches(
        nn.Sequential(*pre, nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
                      nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1)),
        nn.Sequential(*pre, nn.AvgPool2d(2), nn.Conv2d(cin, cout, 1), nn.LeakyReLU(0.1)))


class SimpleDecoder(nn.Module):
    """The self-supervised decoder: `ups` x (nearest x2, conv 3x3, GLU), halving channels each time."""
    def __init__(self, chan_in, chan_out=3, ups=4):
        super().__init__()
        layers, chans = [], chan_in
        for i in range(ups):
            out = chans if i < ups - 1 else chan_out * 2
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(chans, out, 3, padding=1), nn.GLU(dim=1)]
            chans //= 2
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def minibatch_std(x, group):
    """StyleGAN's minibatch standard deviation: x (N, C, H, W) -> (N, C + 1, H, W), the extra map being the mean
    std of the features over groups of samples (i, i + N/G, ...), G = gcd(group, N)."""
    N, C, H, W = x.shape
    G = math.gcd(group, N)
    y = x.reshape(G, N // G, C, H, W)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))     # (N / G,)
    return torch.cat([x, y.reshape(1, -1, 1, 1, 1).expand(G, -1, 1, H, W).reshape(N, 1, H, W)], dim=1)

#----------------------------------------------------------------------------
# The discriminator. `DISC_SIZES` name capacities: 'paper' is the reference's D (12.3 M parameters at 64x64);
# the smaller ones keep its shape with fewer channels, for CPU runs and tests.

DISC_SIZES = {
    'paper': dict(fmap_max=512, fmap_inverse_coef=12, attn_heads=8, attn_dim_head=64, head32_channels=64),
    'small': dict(fmap_max=256, fmap_inverse_coef=11, attn_heads=4, attn_dim_head=32, head32_channels=32),
    'tiny':  dict(fmap_max=64, fmap_inverse_coef=9, attn_heads=2, attn_dim_head=16, head32_channels=16),
}

class LightGANDiscriminator(nn.Module):
    def __init__(self,
        resolution,                 # Image size (a power of two, >= 16).
        channels        = 3,        # Image channels.
        c_dim           = 0,        # Label size; > 0 adds a projection term (Miyato & Koyama 2018) to the logits.
        fmap_max        = 512,      # Most feature maps in a layer.
        fmap_inverse_coef = 12,     # Feature maps at resolution 2^r: min(2^(coef - r), fmap_max).
        attn_res        = (32,),    # Input widths of the residual blocks that get attention first.
        attn_heads      = 8,        # Attention heads.
        attn_dim_head   = 64,       # Channels per attention head.
        head32_channels = 64,       # Channels of the 32x32 head (halved after its downsampling block).
        blur            = False,    # Blur before downsampling (False for the FPA D; the LightGAN baseline's D blurs).
        attn_impl       = 'auto',   # Neighbourhood attention implementation.
        attention       = True,     # False removes every attention layer (only for measuring their cost).
        mbstd_group     = 0,        # > 0: StyleGAN's minibatch standard deviation feature before the logits
                                    # (not in the reference; 0 = off). Lets D see a collapsed batch.
        attn_on_image   = False,    # True: the reference's placement even where it puts attention on the raw
                                    # image (below 64 px; converted checkpoints need it). See below.
    ):
        super().__init__()
        log2 = int(math.log2(resolution))
        if resolution != 2 ** log2 or resolution < 16:
            raise ValueError(f'The LightGAN discriminator needs a power-of-two resolution >= 16, got {resolution}')
        self.resolution, self.channels, self.c_dim, self.mbstd_group = resolution, channels, c_dim, mbstd_group
        attn = lambda dim: PreNorm(dim, LinearAttention(dim, attn_dim_head, attn_heads, impl=attn_impl))

        # Above 256 px, plain strided convolutions bring the image down to 256 px first.
        top = min(8, log2)
        fmaps = [(r, min(2 ** (fmap_inverse_coef - r), fmap_max)) for r in range(top, 2, -1)]
        n_plain = max(0, log2 - 8)
        fmaps[0] = (top, fmaps[0][1] if n_plain > 0 else channels)
        self.plain = nn.Sequential(*[nn.Sequential(*([Blur()] if blur else []),
            nn.Conv2d(channels, fmaps[0][1] if i == n_plain - 1 else channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.1)) for i in range(n_plain)])

        # Attention goes on feature maps only. Below 64 px the reference's rule would put it on the raw image, where
        # ChanNorm normalises over the 3 colour channels: grey pixels have zero variance there, so 1/sqrt(eps) makes
        # D's input gradient ~100x and the gradient penalty swamps D. That level's attention moves one block down.
        attn_widths = set(attn_res) if attn_on_image else {min(w, resolution // 2) for w in attn_res}
        self.blocks = nn.ModuleList()
        self.attns = nn.ModuleList()
        for (r, cin), (_, cout) in zip(fmaps[:-1], fmaps[1:]):
            self.attns.append(attn(cin) if attention and 2 ** r in attn_widths else nn.Identity())
            self.blocks.append(down_block(cin, cout, blur))
        last = fmaps[-1][1]                                             # 8x8 features

        self.to_logits = nn.Sequential(*([Blur()] if blur else []),
            nn.Conv2d(last + int(mbstd_group > 0), last, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(last, 1, 4))
        self.embed = nn.Linear(c_dim, last) if c_dim > 0 else None

        # Second head on the image resized to 32x32 (nearest).
        res_attn = lambda dim: Residual(attn(dim)) if attention else nn.Identity()
        h32 = head32_channels
        self.head32 = nn.Sequential(
            nn.Conv2d(channels, h32, 3, padding=1), res_attn(h32), down_block(h32, h32 // 2, blur), res_attn(h32 // 2),
            nn.AdaptiveAvgPool2d(4), nn.Conv2d(h32 // 2, 1, 4))

        self.decoder8 = SimpleDecoder(last, channels)                   # 8x8 features -> 128x128 image
        self.decoder16 = SimpleDecoder(fmaps[-2][1], channels) if log2 >= 9 else None

        for m in self.modules():                                        # the reference's D init
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0, mode='fan_in', nonlinearity='leaky_relu')

    def features(self, img):
        """-> list of block outputs; the last is 8x8."""
        x = self.plain(img)
        feats = []
        for attn, block in zip(self.attns, self.blocks):
            if not isinstance(attn, nn.Identity):
                x = attn(x) + x
            x = block(x)
            feats.append(x)
        return feats

    def heads(self, img, c=None):
        """-> (logits (N, 1), logits of the 32x32 head (N, 1), block features)."""
        feats = self.features(img)
        x = minibatch_std(feats[-1], self.mbstd_group) if self.mbstd_group else feats[-1]
        logits = self.to_logits(x).flatten(1)
        if self.embed is not None:
            logits = logits + (self.embed(c.to(img.dtype)) * feats[-1].mean(dim=(2, 3))).sum(dim=1, keepdim=True)
        logits32 = self.head32(F.interpolate(img, size=(32, 32), mode='nearest')).flatten(1)
        return logits, logits32, feats

    def reconstruction_loss(self, img, feats):
        """Self-supervised auto-encoding loss on real images (MSE of the decoded 8x8 features, and of one random
        quadrant of the 16x16 features at >= 512 px)."""
        rec = self.decoder8(feats[-1])
        loss = F.mse_loss(rec, F.interpolate(img, size=rec.shape[2:]))
        if self.decoder16 is not None:
            q = int(torch.randint(4, ()))
            crop = lambda t: t[..., (q // 2) * t.shape[-2] // 2:(q // 2 + 1) * t.shape[-2] // 2,
                               (q % 2) * t.shape[-1] // 2:(q % 2 + 1) * t.shape[-1] // 2]
            rec16 = self.decoder16(crop(feats[-2]))
            loss = loss + F.mse_loss(rec16, F.interpolate(crop(img), size=rec16.shape[2:]))
        return loss

    def forward(self, img, c=None):
        return self.heads(img, c)[0]

#----------------------------------------------------------------------------
# Losses (StyleGAN3 sign: high = real). `hinge_d(r, f) = mean relu(1 - r) + mean relu(1 + f)`.

def hinge_d(real_logits, fake_logits):
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def generator_loss(fake_logits):
    return -fake_logits.mean()


def gradient_penalty(grad):
    """The reference's 1-centred penalty: mean_b (||grad_b||_2 - 1)^2 (multiply by its weight, 10)."""
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()

#----------------------------------------------------------------------------
# The EMA schedule of the authors' code, as a per-step beta for G_ema <- beta * G_ema + (1 - beta) * G (step is
# 0-based): nothing until step 20k, then beta 0.995 every 10th step; G_ema <- G at steps 2, 1002, ..., 24002.

def reference_ema_beta(step):
    if step <= 25000 and step % 1000 == 2:
        return 0.0
    if step > 20000 and step % 10 == 0:
        return 0.995
    return 1.0

#----------------------------------------------------------------------------
