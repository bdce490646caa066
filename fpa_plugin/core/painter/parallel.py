"""Fast forms of the learning rules: same signature and tensor layout as `naive.py`, no loop over steps.

Derivations are in README.md beside this file.
"""

import torch

from fpa_plugin.core.painter.strokes import Strokes

#----------------------------------------------------------------------------
# Delta rule as one unit-lower-triangular solve per image and channel:
#   u_t = lr_t (v_t - sum_{s<t} (k_s . k_t) u_s)   <=>   (I + tril(diag(lr) K K^T, -1)) U = diag(lr) V.

def delta(k, v, lr):
    gram = k @ k.transpose(-1, -2)                                      # (B, C, T, T), gram[t, s] = k_t . k_s
    A = torch.tril(gram * lr[..., :, None], diagonal=-1)                # strictly lower part; unit diagonal implied
    u = torch.linalg.solve_triangular(A, lr[..., None] * v, upper=False, unitriangular=True)  # (B, C, T, Dv)
    return Strokes(u.transpose(-1, -2) @ k, u, k)                       # W = U^T K: (B, C, Dv, Dk)

#----------------------------------------------------------------------------
# Hebbian rule: W_T = V^T K, one batched product.

def hebbian(k, v, lr=None):
    return Strokes(v.transpose(-1, -2) @ k, v, k)

#----------------------------------------------------------------------------
