"""What every learning rule returns: the final canvas and the rank-1 factors of every step."""

from typing import NamedTuple

import torch


class Strokes(NamedTuple):
    W: torch.Tensor     # (B, C, Dv, Dk) final canvas W_T (before any output activation)
    u: torch.Tensor     # (B, C, T, Dv)  step t adds the rank-1 update u_t k_t^T
    k: torch.Tensor     # (B, C, T, Dk)

    def updates(self):
        """Rank-1 update of every step, (B, C, T, Dv, Dk)."""
        return self.u[..., :, None] * self.k[..., None, :]

    def partials(self):
        """Canvas after every step, W_1 .. W_T, (B, C, T, Dv, Dk)."""
        return self.updates().cumsum(dim=2)
