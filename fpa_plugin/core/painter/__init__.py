"""The painter: synaptic learning rules that turn per-step keys, values and learning rates into an image.

    paint(k, v, lr, rule='delta', impl=None) -> Strokes(W, u, k')

Each rule has a naive loop (`naive.py`, the definition) and, where one exists, a fast form (`parallel.py`)
with the same signature. `impl` chooses between them, is validated, and defaults to the fast form.
"""

import torch

from fpa_plugin.core.painter import naive, parallel
from fpa_plugin.core.painter.strokes import Strokes

#----------------------------------------------------------------------------

RULES = {                                   # rule -> {impl: function}; the first listed is the default
    'delta':   {'parallel': parallel.delta, 'naive': naive.delta},
    'hebbian': {'parallel': parallel.hebbian, 'naive': naive.hebbian},
    'oja':     {'naive': naive.oja},
}
USES_LR = {'delta': True, 'hebbian': False, 'oja': True}


def check_rule(rule, impl=None):
    """Validate a rule and implementation name; return the implementation to use (None = the fastest)."""
    if rule not in RULES:
        raise ValueError(f'Unknown learning rule {rule!r}: choose one of {", ".join(RULES)}')
    impls = RULES[rule]
    if impl is None:
        return next(iter(impls))
    if impl not in impls:
        raise ValueError(f'Learning rule {rule!r} has no {impl!r} implementation: choose one of {", ".join(impls)}')
    return impl


def paint(k, v, lr=None, rule='delta', impl=None):
    """Run a learning rule on k (B, C, T, Dk) activated keys, v (B, C, T, Dv), lr (B, C, T) (None for hebbian).

    Half-precision inputs are painted in float32: the running canvas and the triangular solve need it.
    """
    impl = check_rule(rule, impl)
    if USES_LR[rule] and lr is None:
        raise ValueError(f'Learning rule {rule!r} needs learning rates')
    if k.dtype in (torch.float16, torch.bfloat16):
        k, v = k.float(), v.float()
        lr = None if lr is None else lr.float()
    with torch.autocast(device_type=k.device.type, enabled=False):
        return RULES[rule][impl](k, v, lr)

#----------------------------------------------------------------------------
