"""The LightGAN-style discriminator (core): shapes at every resolution, and no attention on raw image channels."""

import pytest
import torch

from fpa_plugin.core.attention import PreNorm
from fpa_plugin.core.lightgan import DISC_SIZES, LightGANDiscriminator


@pytest.mark.parametrize('resolution', [16, 32, 64])
def test_heads_shapes(resolution):
    D = LightGANDiscriminator(resolution, **DISC_SIZES['tiny'])
    logits, logits32, feats = D.heads(torch.randn(2, 3, resolution, resolution))
    assert logits.shape == logits32.shape == (2, 1) and feats[-1].shape[-1] == 8


@pytest.mark.parametrize('resolution', [32, 64])
def test_attention_only_on_features(resolution):
    """Below 64 px the reference's rule would normalise over the 3 colour channels (zero variance on grey pixels)."""
    D = LightGANDiscriminator(resolution, **DISC_SIZES['tiny'])
    attns = [a for a in D.attns if isinstance(a, PreNorm)]
    assert attns, 'the main path keeps one attention layer'
    assert all(a.norm.g.shape[1] > 3 for a in attns)


def test_input_gradient_is_moderate_on_grey_images():
    """With ChanNorm on the raw image, D's input gradient on flat grey images was ~100; the gradient penalty
    (target 1) then swamped D's loss and training collapsed."""
    torch.manual_seed(0)
    D = LightGANDiscriminator(32, **DISC_SIZES['tiny'])
    x = torch.zeros(4, 3, 32, 32, requires_grad=True)
    logits, _, _ = D.heads(x)
    grad, = torch.autograd.grad(logits.sum(), x)
    assert grad.flatten(1).norm(dim=1).max() < 20
