"""The LightGAN baseline generator: the reference's parameter counts, SLE and attention placement, shapes, output
range, gradients, init, determinism, validation.

Reference numbers: `Generator` of the authors' code/lightweight_gan.py (lucidrains/lightweight-gan 0.23.3),
instantiated on CPU in a throwaway venv (einops 0.8.2, kornia 0.9.0, torch 2.13; torchvision stubbed, the CUDA
assert removed) with the baseline's arguments (main.py / painter.py `init_GAN`, `--model_type base`):
image_size=64, latent_dim=256, fmap_max=512, fmap_inverse_coef=12, attn_res_layers=[32], freq_chan_attn=False
-> 20,988,039 parameters; the same arguments at 16 / 128 px -> 14,701,573 / 21,267,881. With the reference's
parameters copied in, this module's outputs (train and eval mode, same noise seed) agreed with the reference's to
float32 precision at 8, 16, 64, 128 (one SLE), 256 (two SLEs) and 512 px (3-channel top layer, attention at 32 and
128 px).
"""

import math

import pytest
import torch

from fpa_plugin.core.lightgan_generator import GEN_SIZES, LightGANGenerator
from fpa_plugin.core.lightgan import Residual
from conftest import n_params

TINY = GEN_SIZES['tiny']


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.mark.parametrize('resolution,count', [(64, 20_988_039), (16, 14_701_573), (128, 21_267_881)])
def test_reference_parameter_count(resolution, count):
    assert n_params(LightGANGenerator(resolution=resolution, **GEN_SIZES['paper'])) == count
    if resolution == 64:
        assert n_params(LightGANGenerator()) == count                   # the defaults are the baseline's


def test_paper_widths_at_64():
    G = LightGANGenerator()
    assert [layer.up.conv.out_channels // 2 for layer in G.layers] == [512, 512, 256, 128]   # 8, 16, 32, 64 px
    assert [isinstance(layer.attn, Residual) for layer in G.layers] == [False, False, False, True]   # 32 px input
    assert all(layer.sle is None for layer in G.layers)                 # SLE pairs need >= 128 px

#----------------------------------------------------------------------------
# Skip-layer excitation: 16 px gates 128 px, 32 px gates 256 px.

def test_sle_pairs():
    assert [(2 ** (i + 3), layer.sle_target) for i, layer in enumerate(LightGANGenerator(resolution=256, **TINY).layers)
            if layer.sle is not None] == [(16, 128), (32, 256)]


def test_sle_gates_its_target():
    torch.manual_seed(0)
    G = LightGANGenerator(resolution=128, **TINY)
    z = torch.randn(2, TINY['latent_dim'])
    sle = G.layers[1].sle                                               # 16 px features -> gate at 128 px
    with torch.no_grad():
        sle.net[2].weight.zero_()
        sle.net[2].bias.fill_(-100.0)                                   # gate = sigmoid(-100) ~ 0
    out = G(z)
    bias = G.out_conv.bias.view(1, -1, 1, 1).expand_as(out)            # out_conv of all-zero features
    torch.testing.assert_close(out, bias, atol=1e-6, rtol=0)

#----------------------------------------------------------------------------

@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('resolution', [8, 16, 32])
def test_shape(channels, resolution):
    G = LightGANGenerator(resolution=resolution, channels=channels, **TINY)
    assert G(torch.randn(3, TINY['latent_dim'])).shape == (3, channels, resolution, resolution)


def test_output_range():
    torch.manual_seed(0)
    z = torch.randn(4, TINY['latent_dim'])
    G = LightGANGenerator(resolution=16, **TINY)
    with torch.no_grad():
        G.out_conv.weight.mul_(100)
    raw = G(z, 'none')
    assert raw.abs().max() > 2                                          # linear output, as the reference
    G.out_tanh = True
    torch.testing.assert_close(G(z, 'none'), torch.tanh(raw))


def test_paper_forward_shape():
    G = LightGANGenerator()
    assert G(torch.randn(2, 256)).shape == (2, 3, 64, 64)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    G = LightGANGenerator(resolution=128, **TINY)                      # attention at 32 px and one SLE
    G(torch.randn(2, TINY['latent_dim'])).square().mean().backward()
    dead = [name for name, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f'no gradient reaches {dead}'


def test_kaiming_init():
    torch.manual_seed(0)
    G = LightGANGenerator()
    conv = G.layers[1].up.conv                                          # 512 -> 1024, 4x4: fan_in 8192
    assert abs(conv.weight.std().item() / math.sqrt(2 / conv.weight[0].numel()) - 1) < 0.01
    assert all(layer.up.noise.weight.item() == 0 for layer in G.layers)

#----------------------------------------------------------------------------

def test_deterministic_for_a_seed():
    def run(seed, noise_seed, noise_mode='random'):
        torch.manual_seed(seed)
        G = LightGANGenerator(resolution=16, **TINY)
        with torch.no_grad():
            for layer in G.layers:
                layer.up.noise.weight.fill_(0.5)
        z = torch.randn(2, TINY['latent_dim'])
        torch.manual_seed(noise_seed)
        return G(z, noise_mode)
    torch.testing.assert_close(run(1, 7), run(1, 7), rtol=0, atol=0)
    assert not torch.allclose(run(1, 7), run(2, 7))                     # other weights
    assert not torch.allclose(run(1, 7), run(1, 8))                     # other noise
    torch.testing.assert_close(run(1, 7, 'none'), run(1, 8, 'none'), rtol=0, atol=0)


@pytest.mark.parametrize('resolution', [0, 4, 48, 100])
def test_resolution_validation(resolution):
    with pytest.raises(ValueError, match='power-of-two resolution >= 8'):
        LightGANGenerator(resolution=resolution, **TINY)


def test_input_validation():
    G = LightGANGenerator(resolution=16, **TINY)
    with pytest.raises(ValueError, match=r'\(B, 32\)'):
        G(torch.randn(2, 16))
    with pytest.raises(ValueError, match=r'\(B, 32\)'):
        G(torch.randn(2, 32, 1, 1))
    with pytest.raises(ValueError, match='noise_mode'):
        G(torch.randn(2, 32), noise_mode='const')
