"""The networks StyleGAN3 constructs by class name, wrapping the core modules in StyleGAN3's contract.

Pickles: `persistence.persistent_class` stores this module's source in every network pickle and reloads it in an
anonymous module, so this file imports only absolute names and its constructors take plain data. The core
modules it wraps are pickled by reference: loading a pickle needs `fpa_plugin` installed.
"""

import torch

from torch_utils import misc, persistence

from fpa_plugin.core.generator import FastWeightPainter, check_output_range, to_output_range
from fpa_plugin.core.lightgan import LightGANDiscriminator as _LightGANDiscriminator
from fpa_plugin.core.lightgan_generator import LightGANGenerator as _LightGANGenerator
from fpa_plugin.core.unet import UNet


def _load_network(pkl, key):
    """One network of a StyleGAN3 snapshot (needs the host's `dnnlib` and `legacy`)."""
    import dnnlib
    import legacy
    with dnnlib.util.open_url(pkl) as f:
        return legacy.load_network_pkl(f)[key]

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
# FPA + U-Net (paper Sec. 3.2): G(z) = tanh(UNet(tanh(W_T))), with the FPA frozen. The FPA's weights come from a
# snapshot of an FPA run (`fpa_pkl`, read once at construction), from its G_ema or its raw G (`fpa_weights`).
# The FPA stays out of training: requires_grad_ never unfreezes it, so it gets no gradients and Adam leaves it
# alone, and G_ema's EMA of identical tensors is the identity.

@persistence.persistent_class
class FPAUNetGenerator(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Latent size of the FPA.
        c_dim,                      # Label size, 0 = unconditional.
        img_resolution,             # Output resolution.
        img_channels,               # Output channels.
        painter_kwargs  = {},       # The FPA's FastWeightPainter arguments (as in its snapshot).
        unet_kwargs     = {},       # UNet arguments (dim, dim_mults, attention sizes).
        fpa_pkl         = None,     # Snapshot to take the FPA's weights from, None = leave them (loading a pickle).
        fpa_weights     = 'ema',    # 'ema': the snapshot's G_ema; 'raw': its G (the reference code's choice).
        output_range    = 'symmetric',  # 'reference': 2 clamp(x, 0, 1) - 1, as the authors' code saves images.
    ):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.fpa = FastWeightPainter(z_dim=z_dim, c_dim=c_dim, height=img_resolution, width=img_resolution,
                                     channels=img_channels, **painter_kwargs)
        self.unet = UNet(channels=img_channels, **unet_kwargs)
        check_output_range(output_range)
        self.output_range = output_range
        self.w_dim, self.num_ws = self.fpa.latent_dim, 1
        if fpa_pkl is not None:
            if fpa_weights not in ('ema', 'raw'):
                raise ValueError(f'fpa_weights must be ema or raw, not {fpa_weights!r}')
            source = _load_network(fpa_pkl, 'G_ema' if fpa_weights == 'ema' else 'G')
            with torch.no_grad():
                misc.copy_params_and_buffers(source.fpa, self.fpa, require_all=True)
        self.fpa.requires_grad_(False)

    def requires_grad_(self, requires_grad=True):                       # the training loop calls this every phase
        super().requires_grad_(requires_grad)
        self.fpa.requires_grad_(False)
        return self

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        misc.assert_shape(z, [None, self.z_dim])
        return self.fpa.latent(z, c, truncation_psi).unsqueeze(1)      # (N, 1, w_dim)

    def refine(self, painted):                                          # tanh(W_T) -> tanh(UNet(tanh(W_T)))
        return to_output_range(torch.tanh(self.unet(painted)), self.output_range)

    def synthesis(self, ws, update_emas=False, **_synthesis_kwargs):
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        with torch.no_grad():
            painted = torch.tanh(self.fpa.strokes(ws[:, 0]).W)
        return self.refine(painted)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        return self.synthesis(self.mapping(z, c, truncation_psi), **synthesis_kwargs)

    def paint(self, z, c=None, truncation_psi=1, normalise=False):
        """The FPA's painting trace, with the U-Net's output as `refined` (the image before: `trace.image`)."""
        trace = self.fpa.paint(z, c, truncation_psi, normalise)
        with torch.no_grad():
            painted = torch.tanh(self.fpa.strokes(self.fpa.latent(z, c, truncation_psi)).W)
            return trace._replace(refined=self.refine(painted))

#----------------------------------------------------------------------------
# The LightGAN baseline generator (Liu et al. 2021): G(z, c) -> image; no labels.

@persistence.persistent_class
class LightGANGenerator(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Latent size.
        c_dim,                      # Must be 0: the baseline is unconditional.
        img_resolution,             # Output resolution.
        img_channels,               # Output channels.
        **generator_kwargs,         # core LightGANGenerator arguments: fmap_max, attn_res, out_tanh, ...
    ):
        super().__init__()
        if c_dim != 0:
            raise ValueError('The LightGAN baseline is unconditional: train it without --cond')
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, c_dim, img_resolution, img_channels
        self.net = _LightGANGenerator(latent_dim=z_dim, resolution=img_resolution, channels=img_channels,
                                      **generator_kwargs)
        self.w_dim, self.num_ws = z_dim, 1

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        misc.assert_shape(z, [None, self.z_dim])
        z = torch.nan_to_num(z.to(torch.float32))       # print_module_summary feeds torch.empty: keep BatchNorm sane
        return (z * truncation_psi).unsqueeze(1)

    def synthesis(self, ws, update_emas=False, noise_mode='random', **_synthesis_kwargs):
        return self.net(ws[:, 0], noise_mode='none' if noise_mode == 'none' else 'random')

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        return self.synthesis(self.mapping(z, c, truncation_psi), **synthesis_kwargs)

#----------------------------------------------------------------------------
# The LightGAN-style discriminator: D(img, c) -> logits (N, 1) of the main head; the plugin's loss also uses
# `heads` (second 32x32 head) and `reconstruction_loss`.

@persistence.persistent_class
class LightGANDiscriminator(torch.nn.Module):
    def __init__(self,
        c_dim,                      # Label size, 0 = unconditional.
        img_resolution,             # Input resolution.
        img_channels,               # Input channels.
        init_pkl        = None,     # Snapshot whose D to start from (FPA + U-Net: the FPA run's D), None = fresh.
        **lightgan_kwargs,          # core LightGANDiscriminator arguments: blur, fmap_max, attn_impl, ...
    ):
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.net = _LightGANDiscriminator(img_resolution, img_channels, c_dim, **lightgan_kwargs)
        if init_pkl is not None:
            with torch.no_grad():
                misc.copy_params_and_buffers(_load_network(init_pkl, 'D'), self, require_all=True)

    def heads(self, img, c):
        misc.assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        return self.net.heads(img, c)

    def reconstruction_loss(self, img, feats):
        return self.net.reconstruction_loss(img, feats)

    def forward(self, img, c, update_emas=False, **_block_kwargs):
        return self.heads(img, c)[0]

#----------------------------------------------------------------------------
