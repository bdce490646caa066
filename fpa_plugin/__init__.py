"""Fast Weight Painters (FPA) for NVIDIA's StyleGAN3.

Layers, one way only: `core` (pure PyTorch) <- `stylegan3` (the host's adapters) <- `tools` (commands).
"""

__version__ = '0.1.0'
