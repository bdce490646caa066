"""Attention layers of the LightGAN-style discriminator (lucidrains/lightweight-gan, as the FPA paper trains it).

The discriminator's `LinearAttention` block adds two branches: a global linear attention and a softmax attention
over each pixel's 3x3 neighbourhood (zero padded: border pixels attend to zero keys/values too, as the
reference does with `F.unfold`). Built with `unfold`, that branch dominates the discriminator's cost on CPU: it
materialises 9 copies of k and v. `neighbourhood_attention` computes the same function from nine shifted views
of the padded k and v, in cache-sized chunks with a hand-written backward (`impl='shifted'`);
`'plain'` is the same views under autograd, `'unfold'` the reference's form, kept as the test twin. `'fused'` is a
C++ operator (core/ops/neighbourhood_attention.cpp, compiled with ninja on first use, once per machine) that reads
q, k, v once and never materialises a neighbourhood.

The default, `impl='auto'`, is chosen once per process: 'fused' when the C++ extension builds and loads, else
'shifted' with a warning saying why. Where the C++ operator does not apply (CUDA, float16 and bfloat16 tensors,
kernel sizes other than 1, 3, 5, 7) 'auto' runs 'shifted' without building anything. The environment variable
FPA_ATTENTION_IMPL=<impl> makes 'auto' mean <impl> (FPA_ATTENTION_IMPL=shifted skips the build); an explicit impl
argument is always used as given.
"""

import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from fpa_plugin.core import ops

#----------------------------------------------------------------------------
# 3x3 neighbourhood softmax attention. q, k, v: (N, d, H, W), q already scaled -> (N, d, H, W).

def _neighbourhood_unfold(q, k, v, kernel_size):
    """The reference's form: materialise every pixel's neighbourhood with `unfold` (the test twin)."""
    N, d, H, W = q.shape
    unfold = lambda t: F.unfold(t, kernel_size, padding=kernel_size // 2).view(N, d, kernel_size ** 2, H * W)
    k, v = unfold(k), unfold(v)                                         # (N, d, J, HW): J = 9 neighbours
    sim = torch.einsum('ndi,ndji->nji', q.reshape(N, d, H * W), k)      # (N, J, HW)
    attn = sim.softmax(dim=1)
    return torch.einsum('nji,ndji->ndi', attn, v).view(N, d, H, W)


def _shifts(kernel_size):
    return [(i, j) for i in range(kernel_size) for j in range(kernel_size)]


def _shifted_forward(q, kp, vp, kernel_size):
    """Nine shifted views of the zero-padded kp, vp (N, d, H + 2p, W + 2p) -> out (N, d, H, W), attn (N, J, H, W)."""
    H, W = q.shape[-2:]
    shifts = _shifts(kernel_size)
    attn = torch.stack([(q * kp[:, :, i:i + H, j:j + W]).sum(dim=1) for i, j in shifts], dim=1).softmax(dim=1)
    out = attn[:, :1] * vp[:, :, :H, :W]
    for idx, (i, j) in enumerate(shifts[1:], start=1):
        out = out + attn[:, idx:idx + 1] * vp[:, :, i:i + H, j:j + W]
    return out, attn


def _neighbourhood_plain(q, k, v, kernel_size):
    """The shifted-views form under plain autograd: any order of derivatives."""
    p = kernel_size // 2
    return _shifted_forward(q, F.pad(k, (p,) * 4), F.pad(v, (p,) * 4), kernel_size)[0]


class _NeighbourhoodAttention(torch.autograd.Function):
    """The shifted-views form, in chunks of a few (sample, head) pairs so that each chunk's q, k, v stay in cache
    between the ~20 passes over them, with a hand-written backward that accumulates into padded gradients in place
    (autograd's slice backward would zero-fill a padded tensor per view). Double backward (the gradient penalty)
    recomputes through `_neighbourhood_plain`."""

    @staticmethod
    def forward(ctx, q, k, v, kernel_size):
        p = kernel_size // 2
        ctx.kernel_size, ctx.chunk = kernel_size, _chunk(q, p)
        kp, vp = F.pad(k, (p,) * 4), F.pad(v, (p,) * 4)
        outs, attns = zip(*[_shifted_forward(*t, kernel_size) for t in zip(*(x.split(ctx.chunk) for x in (q, kp, vp)))])
        ctx.save_for_backward(q, k, v, torch.cat(attns))
        return torch.cat(outs)

    @staticmethod
    def backward(ctx, g):
        q, k, v, attn = ctx.saved_tensors
        if torch.is_grad_enabled():                                     # create_graph=True: differentiable path
            return _differentiable_backward(g, q, k, v, ctx.kernel_size)
        p, (H, W) = ctx.kernel_size // 2, q.shape[-2:]
        kp, vp = F.pad(k, (p,) * 4), F.pad(v, (p,) * 4)
        grads = [_shifted_backward(*t, ctx.kernel_size) for t in zip(*(x.split(ctx.chunk) for x in (g, q, kp, vp, attn)))]
        gq, gkp, gvp = (torch.cat(x) for x in zip(*grads))
        return gq, gkp[:, :, p:p + H, p:p + W], gvp[:, :, p:p + H, p:p + W], None


def _differentiable_backward(g, q, k, v, kernel_size):
    """Double backward (e.g. a gradient penalty's): the gradients recomputed through `_neighbourhood_plain`."""
    with torch.enable_grad():
        out = _neighbourhood_plain(q, k, v, kernel_size)
    return (*torch.autograd.grad(out, (q, k, v), g, create_graph=True), None)


def _chunk(q, p, cache_bytes=2 << 20):
    """(sample, head) pairs per chunk: about 2 MB of padded k per chunk."""
    _, d, H, W = q.shape
    return max(1, cache_bytes // (d * (H + 2 * p) * (W + 2 * p) * q.element_size()))


def _shifted_backward(g, q, kp, vp, attn, kernel_size):
    H, W = q.shape[-2:]
    shifts = _shifts(kernel_size)
    g_attn = torch.stack([(g * vp[:, :, i:i + H, j:j + W]).sum(dim=1) for i, j in shifts], dim=1)   # (N, J, H, W)
    g_sim = attn * (g_attn - (attn * g_attn).sum(dim=1, keepdim=True))                          # softmax backward
    gq, gkp, gvp = torch.zeros_like(q), torch.zeros_like(kp), torch.zeros_like(vp)
    for idx, (i, j) in enumerate(shifts):
        gvp[:, :, i:i + H, j:j + W].addcmul_(attn[:, idx:idx + 1], g)
        gq.addcmul_(g_sim[:, idx:idx + 1], kp[:, :, i:i + H, j:j + W])
        gkp[:, :, i:i + H, j:j + W].addcmul_(g_sim[:, idx:idx + 1], q)
    return gq, gkp, gvp


class _FusedNeighbourhoodAttention(torch.autograd.Function):
    """The C++ operator: forward and backward each in one pass over q, k, v (and g), saving only the attention
    weights (N, J, H, W) besides the inputs. Double backward recomputes through `_neighbourhood_plain`."""

    @staticmethod
    def forward(ctx, q, k, v, kernel_size):
        out, attn = ops.neighbourhood_attention_ext().forward(q, k, v, kernel_size)   # (N, d, H, W), (N, J, H, W)
        ctx.kernel_size = kernel_size
        ctx.save_for_backward(q, k, v, attn)
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, attn = ctx.saved_tensors
        if torch.is_grad_enabled():                                     # create_graph=True: differentiable path
            return _differentiable_backward(g, q, k, v, ctx.kernel_size)
        return (*ops.neighbourhood_attention_ext().backward(g, q, k, v, attn, ctx.kernel_size), None)


IMPL_ENV = 'FPA_ATTENTION_IMPL'
_FUSED_DTYPES = (torch.float32, torch.float64)
_FUSED_KERNEL_SIZES = (1, 3, 5, 7)                                      # compiled in; others run 'shifted'
_fused_or_fallback = None                   # 'fused' or 'shifted': whether the C++ operator loads, tried once


def _auto_impl(q, kernel_size):
    """-> the impl that 'auto' means: FPA_ATTENTION_IMPL if set; else 'fused' on CPU float32/64 tensors when the C++
    operator builds and loads (tried once per process; a warning says why when not), else 'shifted'."""
    global _fused_or_fallback
    forced = os.environ.get(IMPL_ENV, '').strip()
    if forced:
        if forced not in NEIGHBOURHOOD_IMPLS or forced == 'auto':
            raise ValueError(f'{IMPL_ENV}={forced!r}: choose one of {", ".join(NEIGHBOURHOOD_IMPLS)} but auto')
        return forced
    if q.device.type != 'cpu' or q.dtype not in _FUSED_DTYPES or kernel_size not in _FUSED_KERNEL_SIZES:
        return 'shifted'                                                # the C++ operator does not apply
    if _fused_or_fallback is None:
        try:
            ops.neighbourhood_attention_ext()
            _fused_or_fallback = 'fused'
        except ops.ExtensionUnavailable as err:
            warnings.warn(f'Neighbourhood attention: using the slower impl="shifted" because the fused C++ operator '
                          f'is unavailable ({err}). Set {IMPL_ENV}=shifted to silence this.', stacklevel=4)
            _fused_or_fallback = 'shifted'
    return _fused_or_fallback


NEIGHBOURHOOD_IMPLS = {
    'auto': lambda q, k, v, ks: NEIGHBOURHOOD_IMPLS[_auto_impl(q, ks)](q, k, v, ks),
    'fused': lambda q, k, v, ks: _FusedNeighbourhoodAttention.apply(q, k, v, ks),
    'shifted': lambda q, k, v, ks: _NeighbourhoodAttention.apply(q, k, v, ks),
    'plain': _neighbourhood_plain,
    'unfold': _neighbourhood_unfold,
}


def neighbourhood_attention(q, k, v, kernel_size=3, impl='auto'):
    if impl not in NEIGHBOURHOOD_IMPLS:
        raise ValueError(f'Unknown neighbourhood attention impl {impl!r}: choose one of {", ".join(NEIGHBOURHOOD_IMPLS)}')
    return NEIGHBOURHOOD_IMPLS[impl](q, k, v, kernel_size)

#----------------------------------------------------------------------------
# Per-pixel layer norm over channels (biased variance), as lightweight-gan's ChanNorm.

class ChanNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.fn, self.norm = fn, ChanNorm(dim)

    def forward(self, x):
        return self.fn(self.norm(x))

#----------------------------------------------------------------------------
# Linear attention + 3x3 neighbourhood attention, concatenated and projected back to `dim` channels.

class LinearAttention(nn.Module):
    def __init__(self, dim, dim_head=64, heads=8, kernel_size=3, impl='auto'):
        super().__init__()
        self.scale, self.heads, self.dim_head, self.kernel_size, self.impl = dim_head ** -0.5, heads, dim_head, kernel_size, impl
        inner = dim_head * heads
        self.to_lin_q = nn.Conv2d(dim, inner, 1, bias=False)
        self.to_lin_kv = nn.Sequential(                                 # depthwise 3x3, then pointwise
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False), nn.Conv2d(dim, inner * 2, 1, bias=False))
        self.to_q = nn.Conv2d(dim, inner, 1, bias=False)
        self.to_kv = nn.Conv2d(dim, inner * 2, 1, bias=False)
        self.to_out = nn.Conv2d(inner * 2, dim, 1)

    def forward(self, x):
        B, _, H, W = x.shape
        h, d = self.heads, self.dim_head
        heads = lambda t: t.reshape(B * h, d, H * W)                    # (B*h, d, HW)

        # Global linear attention: q softmax over features, k softmax over positions.
        q, (k, v) = heads(self.to_lin_q(x)), map(heads, self.to_lin_kv(x).chunk(2, dim=1))
        q = q.softmax(dim=1) * self.scale
        k = k.softmax(dim=2)
        context = torch.bmm(k, v.transpose(1, 2))                       # (B*h, d, d): sum_n k[:, :, n] v[:, :, n]^T
        lin = torch.bmm(context.transpose(1, 2), q)                     # (B*h, d, HW)
        lin = F.gelu(lin).reshape(B, h * d, H, W)

        # Softmax attention over each pixel's 3x3 neighbourhood.
        q = self.to_q(x).reshape(B * h, d, H, W) * self.scale
        k, v = (t.reshape(B * h, d, H, W) for t in self.to_kv(x).chunk(2, dim=1))
        local = neighbourhood_attention(q, k, v, self.kernel_size, self.impl).reshape(B, h * d, H, W)
        return self.to_out(torch.cat([lin, local], dim=1))

#----------------------------------------------------------------------------
