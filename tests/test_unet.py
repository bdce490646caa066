"""The U-Net refiner: the paper's parameter count, shapes, gradients, attention forms, resolution rule, validation.

Equivalence with the authors' `Unet` (code/unet.py, time embedding removed) was checked outside this suite: with
the reference's parameters copied in (its registration order puts `ups` before the middle blocks), outputs agreed
to 1.6e-15 relative in float64 for (dim 64, (1, 2, 4), 3 ch), (16, (1, 2, 4, 8), 1 ch) and (8, (1, 1, 2), 3 ch).
"""

import pytest
import torch
import torch.nn.functional as F

from fpa_plugin.core.unet import UNET_SIZES, LinearAttention, SoftmaxAttention, UNet, unet_kwargs_for
from conftest import n_params

TINY = dict(dim=8, dim_mults=(1, 2, 4), attn_heads=1, attn_dim_head=8)


pytestmark = pytest.mark.usefixtures('one_thread')


def test_paper_parameter_count():
    # The reference's Unet(dim=64, channels=3, dim_mults=(1, 2, 4)) has 7,985,475 parameters (reference doc,
    # section 3; paper, Appendix C.1: "8 M"), at any image size.
    assert n_params(UNet()) == 7_985_475
    for resolution in (16, 32, 64):
        assert unet_kwargs_for(resolution) == dict(dim=64, dim_mults=(1, 2, 4), attn_heads=4, attn_dim_head=32)
        assert n_params(UNet(channels=3, **unet_kwargs_for(resolution))) == 7_985_475


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('height,width', [(32, 32), (64, 64), (16, 24)])
def test_shape_preserved(channels, height, width):
    torch.manual_seed(0)
    net = UNet(channels=channels, **TINY)
    x = torch.randn(2, channels, height, width)
    assert net(x).shape == x.shape


def test_no_output_activation():
    torch.manual_seed(0)
    net = UNet(**TINY)
    with torch.no_grad():
        net.final_conv.bias.fill_(5.0)                                  # a tanh/sigmoid output would cap this
    assert net(torch.randn(1, 3, 16, 16)).min() > 2


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    net = UNet(**TINY)
    net(torch.randn(2, 3, 16, 16)).square().mean().backward()
    dead = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f'no gradient reaches {dead}'


def test_deterministic_for_a_seed():
    x = torch.randn(2, 3, 16, 16)

    def run(seed):
        torch.manual_seed(seed)
        return UNet(**TINY)(x)
    torch.testing.assert_close(run(1), run(1), rtol=0, atol=0)
    assert not torch.allclose(run(1), run(2))

#----------------------------------------------------------------------------
# The attention layers against their definitions (float64): heads are channel blocks of size dim_head.

def test_linear_attention_matches_its_definition():
    torch.manual_seed(0)
    B, dim, h, d, H, W = 2, 12, 3, 5, 4, 6
    attn = LinearAttention(dim, heads=h, dim_head=d).double()
    x = torch.randn(B, dim, H, W, dtype=torch.float64)
    q, k, v = attn.to_qkv(x).view(B, 3, h, d, H * W).unbind(1)         # (B, h, d, N) each
    q = q.softmax(dim=2) * d ** -0.5                                    # softmax over features
    k = k.softmax(dim=3)                                                # softmax over positions
    out = torch.einsum('bhdn,bhdm,bhem->bhen', q, k, v)                 # sum_m (q_n . k_m) v_m
    torch.testing.assert_close(attn(x), attn.to_out(out.reshape(B, h * d, H, W)))


def test_softmax_attention_matches_sdpa():
    torch.manual_seed(0)
    B, dim, h, d, H, W = 2, 12, 3, 5, 4, 6
    attn = SoftmaxAttention(dim, heads=h, dim_head=d).double()
    x = torch.randn(B, dim, H, W, dtype=torch.float64)
    q, k, v = (t.transpose(2, 3) for t in attn.to_qkv(x).view(B, 3, h, d, H * W).unbind(1))   # (B, h, N, d)
    out = F.scaled_dot_product_attention(q, k, v).transpose(2, 3)      # (B, h, d, N)
    torch.testing.assert_close(attn(x), attn.to_out(out.reshape(B, h * d, H, W)))

#----------------------------------------------------------------------------
# Resolution rule: three levels up to 64 px; above, one more per doubling with the bottleneck kept at 16x16.

@pytest.mark.parametrize('resolution,widths', [
    (128, (32, 64, 128, 256)), (256, (16, 32, 64, 128, 256)), (1024, (16, 16, 16, 32, 64, 128, 256))])
def test_paper_widths_per_resolution(resolution, widths):
    kw = unet_kwargs_for(resolution)
    assert tuple(kw['dim'] * m for m in kw['dim_mults']) == widths


@pytest.mark.parametrize('resolution', [16, 64, 128, 256, 1024])
def test_levels_per_resolution(resolution):
    for size in UNET_SIZES:
        levels = len(unet_kwargs_for(resolution, size)['dim_mults'])
        assert resolution // 2 ** (levels - 1) == (resolution // 4 if resolution <= 64 else 16)


@pytest.mark.parametrize('size', ['small', 'tiny'])
@pytest.mark.parametrize('resolution', [16, 128])
def test_bottleneck_resolution(size, resolution):
    net = UNet(**unet_kwargs_for(resolution, size))
    seen = []
    net.mid_attn.register_forward_hook(lambda module, inputs, output: seen.append(output.shape[-2:]))
    assert net(torch.randn(1, 3, resolution, resolution)).shape == (1, 3, resolution, resolution)
    side = resolution // 4 if resolution <= 64 else 16
    assert seen == [(side, side)]


def test_smaller_sizes_are_smaller():
    counts = [n_params(UNet(**unet_kwargs_for(64, size))) for size in ('paper', 'small', 'tiny')]
    assert counts[0] > counts[1] > counts[2]

#----------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs,match', [
    (dict(dim_mults=()), 'dim_mults'),
    (dict(dim_mults=(1, 1.5)), 'dim_mults'),
    (dict(dim=12), 'divisible by groups'),
    (dict(channels=0), 'positive'),
])
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


def test_input_validation():
    net = UNet(**TINY)
    with pytest.raises(ValueError, match='divisible by 4'):
        net(torch.randn(1, 3, 18, 16))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        net(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        net(torch.randn(3, 16, 16))


@pytest.mark.parametrize('resolution', [0, 2, 48, 100])
def test_helper_validation(resolution):
    with pytest.raises(ValueError, match='power-of-two'):
        unet_kwargs_for(resolution)
    with pytest.raises(ValueError, match='Unknown U-Net size'):
        unet_kwargs_for(64, 'huge')
