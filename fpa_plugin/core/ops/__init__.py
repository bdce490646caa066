"""C++ operators, compiled on first use (see loader.py). Each has a pure-PyTorch definition it is tested against:
neighbourhood_attention.cpp <-> fpa_plugin/core/attention.py's `_neighbourhood_unfold`."""

from fpa_plugin.core.ops.loader import ExtensionUnavailable, load


def neighbourhood_attention_ext():
    """-> the module with forward(q, k, v, kernel_size) -> (out, attn) and backward(g, q, k, v, attn, kernel_size)
    -> (gq, gk, gv); raises ExtensionUnavailable."""
    return load('neighbourhood_attention')
