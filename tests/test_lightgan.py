"""The LightGAN-style discriminator (core): shapes at every resolution, and no attention on raw image channels."""

import pytest
import torch

from fpa_plugin.core.attention import PreNorm
from fpa_plugin.core.lightgan import DISC_SIZES, LightGANDiscriminator, minibatch_std


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


def test_minibatch_std_sees_a_collapsed_batch():
    x = torch.randn(1, 5, 4, 4).expand(8, -1, -1, -1)
    y = minibatch_std(x, 4)
    assert y.shape == (8, 6, 4, 4) and torch.equal(y[:, :5], x) and y[:, 5].max() < 1e-3
    assert minibatch_std(torch.randn(8, 5, 4, 4), 4)[:, 5].min() > 0.5
    assert minibatch_std(torch.randn(6, 5, 4, 4), 4).shape == (6, 6, 4, 4)     # groups of gcd(4, 6) = 2


def test_mbstd_option_changes_only_the_logits_input():
    D = LightGANDiscriminator(32, mbstd_group=4, **DISC_SIZES['tiny'])
    assert D.to_logits[0].in_channels == D.decoder8.net[1].in_channels + 1
    logits, _, _ = D.heads(torch.randn(8, 3, 32, 32))
    assert logits.shape == (8, 1)


def test_reference_placement_kept_for_converted_checkpoints():
    D = LightGANDiscriminator(32, attn_on_image=True, **DISC_SIZES['tiny'])
    assert isinstance(D.attns[0], PreNorm) and D.attns[0].norm.g.shape[1] == 3
