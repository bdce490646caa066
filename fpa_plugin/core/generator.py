"""The Fast Weight Painter generator (Irie & Schmidhuber, ICLR 2023, Sec. 3.1, Eq. 4-9).

    (x_1..x_T) = InputGenerator(z)          v1: x_t = z;  v2: Linear(z) split into T pieces, shared Linear
    (h_1..h_T) = SequenceProcessor(x)       L-layer LSTM, optional Linear(z) -> initial (h, c)
    W_t        = UpdateNet(W_{t-1}, h_t)    [k, v, beta] = Linear(h_t) per channel; a synaptic learning rule
    image      = tanh(W_T)                  one (height x width) = (d_value x d_key) matrix per channel

Pure PyTorch: nothing here knows about StyleGAN3. Initialisation follows the authors' code
(`../shared/reference/fpainter-behaviour.md`, section 1a).
"""

import math
from typing import NamedTuple, Optional

import torch
from torch import nn

from fpa_plugin.core import painter

#----------------------------------------------------------------------------
# Input generator (Eq. 4).

class InputGenerator(nn.Module):
    def __init__(self,
        latent_dim,                 # Size of the latent (z, with the label embedding when conditional).
        steps,                      # Number of painting steps T.
        version     = 'v2',         # 'v1': x_t = z at every step; 'v2': a learned split of z into T inputs.
        d_in        = 8,            # v2: size of each of the T pieces.
        d_in_proj   = 128,          # v2: size of the shared projection of each piece (d'_in).
        input_tanh  = False,        # v2: tanh on the T pieces (the reference's `--v2_input_sigmoid`).
    ):
        super().__init__()
        if version not in ('v1', 'v2'):
            raise ValueError(f'Unknown input generator version {version!r}: choose v1 or v2')
        self.version, self.steps, self.d_in, self.input_tanh = version, steps, d_in, input_tanh
        self.out_dim = latent_dim
        if version == 'v2':
            self.split = nn.Linear(latent_dim, steps * d_in)
            self.proj = nn.Linear(d_in, d_in_proj)
            nn.init.kaiming_normal_(self.proj.weight, a=0, mode='fan_in', nonlinearity='leaky_relu')
            self.out_dim = d_in_proj

    def forward(self, z):                                               # z (B, latent_dim) -> (T, B, out_dim)
        if self.version == 'v1':
            return z.unsqueeze(0).expand(self.steps, -1, -1)
        x = self.split(z)                                               # (B, T * d_in)
        if self.input_tanh:
            x = torch.tanh(x)
        x = x.view(z.shape[0], self.steps, self.d_in).transpose(0, 1)   # (T, B, d_in)
        return self.proj(x)                                             # (T, B, d'_in)

#----------------------------------------------------------------------------
# Sequence processor (Eq. 5): an LSTM, time-major, optionally started from a state computed from z.

class SequenceProcessor(nn.Module):
    def __init__(self,
        in_dim,                     # Size of each input x_t.
        latent_dim,                 # Size of z (for the initial state).
        hidden      = 1024,         # LSTM width d_hidden.
        layers      = 2,            # Number of LSTM layers L.
        latent_to_init = False,     # Linear from z to the initial (h, c) of every layer; else zeros.
        init_gain   = 'default',    # 'kaiming': kaiming-normal weight on latent_to_init (the reference's v1).
    ):
        super().__init__()
        self.hidden, self.layers = hidden, layers
        self.lstm = nn.LSTM(in_dim, hidden, layers)
        bound = 1 / math.sqrt(hidden)                                   # = PyTorch's default, explicit here
        for p in self.lstm.parameters():
            nn.init.uniform_(p, -bound, bound)
        self.latent_to_init = nn.Linear(latent_dim, 2 * layers * hidden) if latent_to_init else None
        if latent_to_init and init_gain == 'kaiming':
            nn.init.kaiming_normal_(self.latent_to_init.weight, a=0, mode='fan_in', nonlinearity='leaky_relu')

    def forward(self, x, z):                                            # x (T, B, in_dim), z (B, latent) -> (T, B, H)
        state = None
        if self.latent_to_init is not None:
            hc = self.latent_to_init(z).view(z.shape[0], 2, self.layers, self.hidden)   # (B, 2, L, H)
            hc = hc.permute(1, 2, 0, 3)                                 # (2, L, B, H)
            state = (hc[0].contiguous(), hc[1].contiguous())
        return self.lstm(x, state)[0]

#----------------------------------------------------------------------------
# Update network (Eq. 8-9): per-step keys, values and learning rates, then a learning rule paints them.

class UpdateNet(nn.Module):
    def __init__(self,
        hidden,                     # Size of h_t.
        channels,                   # Image channels c.
        height,                     # d_value: image height.
        width,                      # d_key: image width.
        rule        = 'delta',      # Learning rule: 'delta', 'hebbian' or 'oja'.
        impl        = None,         # Rule implementation: None = fastest, 'naive' = the loop (definition).
        first_step  = 'paper',      # 'paper': Eq. 9 at every step; 'reference': as the authors' code
                                    # (delta without learning rate at t = 1).
        key_activation = 'softmax', # 'softmax' (paper) or 'identity' (the reference's hebbian model).
    ):
        super().__init__()
        painter.check_rule(rule, impl)
        if first_step not in ('paper', 'reference'):
            raise ValueError(f'Unknown first_step {first_step!r}: choose paper or reference')
        if key_activation not in ('softmax', 'identity'):
            raise ValueError(f'Unknown key_activation {key_activation!r}: choose softmax or identity')
        if rule == 'oja' and key_activation != 'softmax':
            raise ValueError('The oja rule is defined with softmax keys')
        self.channels, self.height, self.width = channels, height, width
        self.rule, self.impl, self.first_step, self.key_activation = rule, impl, first_step, key_activation
        self.uses_lr = painter.USES_LR[rule]
        out_dim = channels * (width + height + int(self.uses_lr))
        self.linear = nn.Linear(hidden, out_dim)
        bound = 1 / math.sqrt(out_dim)                                  # the reference: U(+-1/sqrt(out)) on W and b
        nn.init.uniform_(self.linear.weight, -bound, bound)
        nn.init.uniform_(self.linear.bias, -bound, bound)

    def rule_inputs(self, h):                                           # h (T, B, H) -> k, v, lr for the painter
        T, B, _ = h.shape
        C = self.channels
        kvb = self.linear(h)                                            # (T, B, C * (Dk + Dv [+ 1]))
        if kvb.dtype in (torch.float16, torch.bfloat16):
            kvb = kvb.float()                                           # mixed precision stops here: paint in fp32
        k, v, beta = kvb.split([C * self.width, C * self.height, C * int(self.uses_lr)], dim=-1)
        k = k.reshape(T, B, C, self.width).permute(1, 2, 0, 3)          # (B, C, T, Dk)
        v = v.reshape(T, B, C, self.height).permute(1, 2, 0, 3)         # (B, C, T, Dv)
        if self.key_activation == 'softmax':
            k = torch.softmax(k, dim=-1)
        lr = None
        if self.uses_lr:
            lr = torch.sigmoid(beta).permute(1, 2, 0)                   # (B, C, T)
            if self.first_step == 'reference' and self.rule == 'delta':
                lr = torch.cat([torch.ones_like(lr[..., :1]), lr[..., 1:]], dim=-1)  # W_1 = v_1 k_1^T
        return k, v, lr

    def forward(self, h):                                               # h (T, B, H) -> Strokes
        return painter.paint(*self.rule_inputs(h), rule=self.rule, impl=self.impl)

#----------------------------------------------------------------------------
# Output range. StyleGAN3 shows x in [-1, 1] as (x + 1) * 127.5. The authors' code trains on reals in [0, 1] and
# saves its tanh output clamped to [0, 1]: 'reference' maps that to StyleGAN3's range, 2 clamp(x, 0, 1) - 1, so
# that converted checkpoints of the paper's models give the authors' images.

def check_output_range(output_range):
    if output_range not in ('symmetric', 'reference'):
        raise ValueError(f'Unknown output_range {output_range!r}: choose symmetric or reference')


def to_output_range(x, output_range):
    return x if output_range == 'symmetric' else 2 * x.clamp(0, 1) - 1

#----------------------------------------------------------------------------
# What `FastWeightPainter.paint` returns: the whole painting of a batch.

class PaintingTrace(NamedTuple):
    image: torch.Tensor         # (B, C, H, W) the painted image (after the output activation)
    updates: torch.Tensor       # (B, T, C, H, W) rank-1 update of every step
    partials: torch.Tensor      # (B, T, C, H, W) image after every step (with the output activation)
    keys: torch.Tensor          # (B, T, C, W) the key of every step (which columns it writes)
    values: torch.Tensor        # (B, T, C, H) the effective value u_t of every step
    lrs: torch.Tensor           # (B, T, C) learning rates (ones for hebbian)
    refined: Optional[torch.Tensor] = None  # (B, C, H, W) FPA + U-Net: the U-Net's output, the generator's output

#----------------------------------------------------------------------------
# The generator.

class FastWeightPainter(nn.Module):
    output_range, amp = 'symmetric', None                               # class defaults: pickles made before these
                                                                        # options existed load and behave as then
    def __init__(self,
        z_dim           = 128,      # d_latent.
        c_dim           = 0,        # Label size, 0 = unconditional (no label parameters at all).
        height          = 64,       # Image height = d_value.
        width           = 64,       # Image width = d_key.
        channels        = 3,        # Image channels c.
        steps           = 64,       # Painting steps T.
        input_version   = 'v2',     # InputGenerator 'v1' or 'v2'.
        d_in            = 8,        # v2 piece size.
        d_in_proj       = 128,      # v2 projection size d'_in.
        input_tanh      = False,    # v2: tanh on the input pieces.
        hidden          = 1024,     # LSTM width d_hidden.
        layers          = 2,        # LSTM layers L.
        latent_to_init  = False,    # Initial LSTM state from z (always on for v1, as the reference).
        rule            = 'delta',  # Learning rule.
        impl            = None,     # Rule implementation (None = fastest).
        first_step      = 'paper',  # 'reference': the authors' delta step without learning rate at t = 1.
        key_activation  = 'softmax',# Key activation phi.
        out_tanh        = True,     # tanh on the output image.
        c_embed_dim     = None,     # Label embedding size, None = z_dim.
        output_range    = 'symmetric',  # 'reference': map to [-1, 1] what the authors' code saves, clamp(x, 0, 1).
        amp             = None,     # 'bfloat16' / 'float16': autocast the LSTM and projections; the painter stays fp32.
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.height, self.width, self.channels = z_dim, c_dim, height, width, channels
        self.steps, self.out_tanh = steps, out_tanh
        check_output_range(output_range)
        if amp not in (None, 'bfloat16', 'float16'):
            raise ValueError(f'Unknown amp {amp!r}: choose bfloat16, float16 or None')
        self.output_range, self.amp = output_range, amp
        self.embed = None
        latent_dim = z_dim
        if c_dim > 0:
            self.embed = nn.Linear(c_dim, c_embed_dim or z_dim)
            latent_dim += self.embed.out_features
        self.latent_dim = latent_dim                                    # size of w = [z, embed(c)]
        self.input_generator = InputGenerator(latent_dim, steps, input_version, d_in, d_in_proj, input_tanh)
        v1 = input_version == 'v1'
        self.sequence_processor = SequenceProcessor(self.input_generator.out_dim, latent_dim, hidden, layers,
            latent_to_init=latent_to_init or v1, init_gain='kaiming' if v1 else 'default')
        self.update_net = UpdateNet(hidden, channels, height, width, rule, impl, first_step, key_activation)

    def latent(self, z, c=None, truncation_psi=1):
        """w = [psi * z, embed(c)]: (B, latent_dim). Truncation pulls z towards its mean, 0."""
        w = z.to(self.update_net.linear.weight.dtype)                   # e.g. gen_images.py passes float64 z
        w = w * truncation_psi if truncation_psi != 1 else w
        if self.embed is not None:
            if c is None or c.shape[-1] != self.c_dim:
                raise ValueError(f'This generator is conditional: it needs labels c of size {self.c_dim}')
            w = torch.cat([w, self.embed(c.to(w.dtype))], dim=1)
        return w

    def hidden_states(self, w):                                         # w (B, latent_dim) -> h (T, B, H)
        return self.sequence_processor(self.input_generator(w), w)

    def rule_inputs(self, w):                                           # w -> k, v, lr in float32
        with torch.autocast(w.device.type, dtype=getattr(torch, self.amp or 'float32'), enabled=self.amp is not None):
            return self.update_net.rule_inputs(self.hidden_states(w))

    def strokes(self, w):                                               # w (B, latent_dim) -> Strokes
        return painter.paint(*self.rule_inputs(w), rule=self.update_net.rule, impl=self.update_net.impl)

    def activate(self, W):
        return to_output_range(torch.tanh(W) if self.out_tanh else W, self.output_range)

    def synthesise(self, w):                                            # -> (B, C, H, W) image
        return self.activate(self.strokes(w).W)

    def forward(self, z, c=None, truncation_psi=1):
        return self.synthesise(self.latent(z, c, truncation_psi))

    @torch.no_grad()
    def paint(self, z, c=None, truncation_psi=1, normalise=False):
        """The whole painting for latents z (and labels c), from one forward pass.

        normalise=True applies the paper's visualisation (Fig. 5): every update and partial image is scaled to
        the Frobenius norm of its sample's final canvas W_T, then passed through tanh.
        """
        k, v, lr = self.rule_inputs(self.latent(z, c, truncation_psi))
        s = painter.paint(k, v, lr, rule=self.update_net.rule, impl=self.update_net.impl)
        updates = s.updates().transpose(1, 2)                           # (B, T, C, H, W)
        partials = updates.cumsum(dim=1)
        if normalise:
            norm = lambda x: x.flatten(2).norm(dim=2)[..., None, None, None].clamp_min(1e-12)  # (B, T, 1, 1, 1)
            final = s.W.flatten(1).norm(dim=1)[:, None, None, None, None]                   # (B, 1, 1, 1, 1)
            updates = to_output_range(torch.tanh(updates * final / norm(updates)), self.output_range)
            partials = to_output_range(torch.tanh(partials * final / norm(partials)), self.output_range)
        else:
            partials = self.activate(partials)
        lrs = lr.transpose(1, 2) if lr is not None else torch.ones_like(s.u[..., 0]).transpose(1, 2)
        return PaintingTrace(self.activate(s.W), updates, partials, s.k.transpose(1, 2), s.u.transpose(1, 2), lrs)

#----------------------------------------------------------------------------
