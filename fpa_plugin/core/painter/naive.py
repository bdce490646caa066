"""Learning rules as plain loops over the painting steps: the definitions.

Every rule, naive or fast, has one signature and one tensor layout:

    k   (B, C, T, D_key)    keys after the key activation (softmax in the paper)
    v   (B, C, T, D_value)  values
    lr  (B, C, T)           learning rates after the sigmoid (ignored by `hebbian`)
    ->  Strokes(W, u, k'):  W (B, C, D_value, D_key) the final canvas W_T, and the rank-1 factors of every step,
        u (B, C, T, D_value) and k' (B, C, T, D_key), with W_t - W_{t-1} = u_t k'_t^T.

W_t is a (D_value x D_key) matrix per image and channel: rows are image rows (height), columns image columns.
"""

import torch

from fpa_plugin.core.painter.strokes import Strokes

#----------------------------------------------------------------------------
# Delta rule (paper Eq. 9): W_t = W_{t-1} + lr_t (v_t - W_{t-1} k_t) k_t^T, W_0 = 0.

def delta(k, v, lr):
    B, C, T, Dk = k.shape
    W = k.new_zeros(B, C, v.shape[-1], Dk)                              # (B, C, Dv, Dk)
    us = []
    for t in range(T):
        k_t, v_t = k[:, :, t], v[:, :, t]                               # (B, C, Dk), (B, C, Dv)
        u_t = lr[:, :, t, None] * (v_t - torch.einsum('bcvk,bck->bcv', W, k_t))
        W = W + u_t[..., :, None] * k_t[..., None, :]
        us.append(u_t)
    return Strokes(W, torch.stack(us, dim=2), k)

#----------------------------------------------------------------------------
# Purely additive (Hebbian) rule, the paper's ablation: W_t = W_{t-1} + v_t k_t^T.

def hebbian(k, v, lr=None):
    B, C, T, Dk = k.shape
    W = k.new_zeros(B, C, v.shape[-1], Dk)
    for t in range(T):
        W = W + v[:, :, t, :, None] * k[:, :, t, None, :]
    return Strokes(W, v, k)

#----------------------------------------------------------------------------
# Oja-style rule as the reference code implements it (IDSIA/fpainter, LSTMOjaTimeSplitLatentGeneratorV2):
# k~_t = k_t - W_{t-1}^T v_t, k'_t = softmax(k~_t), W_t = W_{t-1} + lr_t v_t k'_t^T. At t = 1, W_0 = 0, so the
# key is softmax(k_1) again (the reference applies softmax twice there too). There is no parallel form.

def oja(k, v, lr):
    B, C, T, Dk = k.shape
    W = k.new_zeros(B, C, v.shape[-1], Dk)
    us, keys = [], []
    for t in range(T):
        v_t = v[:, :, t]                                                # (B, C, Dv)
        key = torch.softmax(k[:, :, t] - torch.einsum('bcvk,bcv->bck', W, v_t), dim=-1)
        u_t = lr[:, :, t, None] * v_t
        W = W + u_t[..., :, None] * key[..., None, :]
        us.append(u_t)
        keys.append(key)
    return Strokes(W, torch.stack(us, dim=2), torch.stack(keys, dim=2))

#----------------------------------------------------------------------------
