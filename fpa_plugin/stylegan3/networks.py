"""The networks StyleGAN3 constructs by class name, wrapping the core modules in StyleGAN3's contract.

Pickles: `persistence.persistent_class` stores this module's source in every network pickle and reloads it in an
anonymous module, so this file imports only absolute names and its constructors take plain data. The core
modules it wraps are pickled by reference: loading a pickle needs `fpa_plugin` installed.
"""

import torch

from torch_utils import misc, persistence

from fpa_plugin.core.generator import FastWeightPainter
from fpa_plugin.core.lightgan import LightGANDiscriminator as _LightGANDiscriminator

#----------------------------------------------------------------------------
# The FPA generator. G(z, c) -> image (N, C, H, W) in [-1, 1]; mapping(z, c) -> ws (N, 1, w_dim) is the
# latent [psi * z, embed(c)], synthesis(ws) paints it, so StyleGAN2's loss and metrics can use the split.

@persistence.persistent_class
class FPAGenerator(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Latent size d_latent.
        c_dim,                      # Label size, 0 = unconditional.
        img_resolution,             # Output resolution (painted as a d_value x d_key = res x res matrix).
        img_channels,               # Output channels.
        **painter_kwargs,           # FastWeightPainter arguments: steps, rule, input_version, hidden, ...
    ):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.fpa = FastWeightPainter(z_dim=z_dim, c_dim=c_dim, height=img_resolution, width=img_resolution,
                                     channels=img_channels, **painter_kwargs)
        self.w_dim, self.num_ws = self.fpa.latent_dim, 1

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        misc.assert_shape(z, [None, self.z_dim])
        return self.fpa.latent(z, c, truncation_psi).unsqueeze(1)      # (N, 1, w_dim)

    def synthesis(self, ws, update_emas=False, **_synthesis_kwargs):  # noise_mode, force_fp32: nothing to do
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        return self.fpa.synthesise(ws[:, 0])

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        return self.synthesis(self.mapping(z, c, truncation_psi), **synthesis_kwargs)

    def paint(self, z, c=None, truncation_psi=1, normalise=False):
        """The painting trace (see `FastWeightPainter.paint`)."""
        return self.fpa.paint(z, c, truncation_psi, normalise)

#----------------------------------------------------------------------------
# The LightGAN-style discriminator: D(img, c) -> logits (N, 1) of the main head; the plugin's loss also uses
# `heads` (second 32x32 head) and `reconstruction_loss`.

@persistence.persistent_class
class LightGANDiscriminator(torch.nn.Module):
    def __init__(self,
        c_dim,                      # Label size, 0 = unconditional.
        img_resolution,             # Input resolution.
        img_channels,               # Input channels.
        **lightgan_kwargs,          # core LightGANDiscriminator arguments: blur, fmap_max, attn_impl, ...
    ):
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.net = _LightGANDiscriminator(img_resolution, img_channels, c_dim, **lightgan_kwargs)

    def heads(self, img, c):
        misc.assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        return self.net.heads(img, c)

    def reconstruction_loss(self, img, feats):
        return self.net.reconstruction_loss(img, feats)

    def forward(self, img, c, update_emas=False, **_block_kwargs):
        return self.heads(img, c)[0]

#----------------------------------------------------------------------------
