"""The FPA generator: shapes, ranges, conditioning, init, painting trace, determinism, validation."""

import math

import pytest
import torch

from fpa_plugin.core.generator import FastWeightPainter
from fpa_plugin.core import presets

SMALL = dict(z_dim=16, hidden=32, layers=1, d_in=4, d_in_proj=8, steps=5)


@pytest.mark.parametrize('channels', [1, 3, 4])
@pytest.mark.parametrize('height,width', [(8, 8), (6, 10)])
@pytest.mark.parametrize('version', ['v1', 'v2'])
def test_shapes_and_range(channels, height, width, version):
    G = FastWeightPainter(channels=channels, height=height, width=width, input_version=version, **SMALL)
    img = G(torch.randn(3, 16))
    assert img.shape == (3, channels, height, width)
    assert img.abs().max() < 1
    G_raw = FastWeightPainter(channels=channels, height=height, width=width, out_tanh=False, **SMALL)
    assert G_raw(torch.randn(2, 16)).shape == (2, channels, height, width)


@pytest.mark.parametrize('rule', ['delta', 'hebbian', 'oja'])
def test_rules_train(rule):
    G = FastWeightPainter(height=6, width=6, rule=rule, **SMALL)
    G(torch.randn(2, 16)).square().sum().backward()
    assert all(p.grad is not None for p in G.parameters())
    if rule == 'hebbian':                           # no learning rate: keys + values only
        assert G.update_net.linear.out_features == 3 * 12


def test_naive_and_parallel_generators_agree():
    torch.manual_seed(0)
    G = FastWeightPainter(height=8, width=8, **SMALL).double()
    z = torch.randn(4, 16, dtype=torch.float64)
    fast = G(z)
    G.update_net.impl = 'naive'
    torch.testing.assert_close(G(z), fast, rtol=1e-12, atol=1e-12)


def test_reference_first_step_has_no_learning_rate():
    torch.manual_seed(0)
    G = FastWeightPainter(height=5, width=7, first_step='reference', out_tanh=False, **{**SMALL, 'steps': 1})
    w = G.latent(torch.randn(2, 16))
    k, v, _ = G.update_net.rule_inputs(G.hidden_states(w))
    expected = torch.einsum('bcv,bck->bcvk', v[:, :, 0], k[:, :, 0])   # W_1 = v_1 k_1^T
    torch.testing.assert_close(G.synthesise(w), expected)
    G.update_net.first_step = 'paper'
    assert not torch.allclose(G.synthesise(w), expected)


def test_conditional_generation():
    G = FastWeightPainter(c_dim=3, height=6, width=6, **SMALL)
    z = torch.randn(2, 16)
    a = G(z, torch.eye(3)[[0, 0]])
    b = G(z, torch.eye(3)[[0, 1]])
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])
    with pytest.raises(ValueError, match='needs labels'):
        G(z)
    uncond = FastWeightPainter(height=6, width=6, **SMALL)
    assert uncond.embed is None and not any('embed' in n for n, _ in uncond.named_parameters())


def test_reference_init():
    G = FastWeightPainter(height=64, width=64, z_dim=32, hidden=64, layers=1, d_in=4, d_in_proj=128, steps=4)
    bound = 1 / math.sqrt(3 * (2 * 64 + 1))
    for p in (G.update_net.linear.weight, G.update_net.linear.bias):
        assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound
    std = G.input_generator.proj.weight.std().item()            # kaiming normal: sqrt(2 / fan_in) = 0.707
    assert 0.6 < std < 0.8
    for p in G.sequence_processor.lstm.parameters():
        assert p.abs().max() <= 1 / math.sqrt(64)


def test_determinism():
    make = lambda: (torch.manual_seed(7), FastWeightPainter(height=6, width=6, **SMALL))[1]
    z = torch.randn(2, 16)
    torch.testing.assert_close(make()(z), make()(z), rtol=0, atol=0)


@pytest.mark.parametrize('normalise', [False, True])
def test_painting_trace(normalise):
    torch.manual_seed(1)
    G = FastWeightPainter(height=6, width=9, **SMALL)
    z = torch.randn(2, 16)
    tr = G.paint(z, normalise=normalise)
    assert tr.updates.shape == tr.partials.shape == (2, 5, 3, 6, 9)
    assert tr.keys.shape == (2, 5, 3, 9) and tr.lrs.shape == (2, 5, 3)
    torch.testing.assert_close(tr.image, G(z))
    if not normalise:
        torch.testing.assert_close(tr.partials[:, -1], tr.image)
        torch.testing.assert_close(torch.tanh(tr.updates.sum(dim=1)), tr.image)
    else:   # the last partial image is W_T scaled to its own norm: tanh(W_T), the image
        torch.testing.assert_close(tr.partials[:, -1], tr.image)
        assert tr.updates.abs().max() < 1


def test_reference_output_range():
    torch.manual_seed(0)
    G = FastWeightPainter(height=6, width=6, **SMALL)
    z = torch.randn(3, 16)
    ref = FastWeightPainter(height=6, width=6, output_range='reference', **SMALL)
    ref.load_state_dict(G.state_dict())
    torch.testing.assert_close(ref(z), 2 * G(z).clamp(0, 1) - 1)     # the authors' images: tanh clamped to [0, 1]
    assert (ref(z) >= -1).all() and ref.paint(z).partials.min() >= -1


def test_mixed_precision_keeps_the_painter_in_float32(monkeypatch):
    from fpa_plugin.core import painter
    torch.manual_seed(0)
    G = FastWeightPainter(height=8, width=8, **SMALL)
    G16 = FastWeightPainter(height=8, width=8, amp='bfloat16', **SMALL)
    G16.load_state_dict(G.state_dict())
    seen = []
    real = painter.paint
    monkeypatch.setattr(painter, 'paint', lambda k, v, lr, **kw: seen.append((k.dtype, v.dtype)) or real(k, v, lr, **kw))
    z = torch.randn(4, 16)
    img, img16 = G(z), G16(z)
    assert seen[-1] == (torch.float32, torch.float32) and img16.dtype == torch.float32
    mse = (img - img16).square().mean()
    assert 10 * torch.log10(4 / mse) > 30                                # PSNR over the [-1, 1] range, in dB
    with pytest.raises(ValueError, match='amp'):
        FastWeightPainter(amp='int8', **SMALL)


def test_validation():
    with pytest.raises(ValueError, match='Unknown learning rule'):
        FastWeightPainter(rule='hebb', **SMALL)
    with pytest.raises(ValueError, match='no \'parallel\''):
        FastWeightPainter(rule='oja', impl='parallel', **SMALL)
    with pytest.raises(ValueError, match='input generator version'):
        FastWeightPainter(input_version='v3', **SMALL)
    with pytest.raises(ValueError, match='first_step'):
        FastWeightPainter(first_step='authors', **SMALL)
    with pytest.raises(ValueError, match='output_range'):
        FastWeightPainter(output_range='unit', **SMALL)


# Table 3 "Gen. Param. Count" (M) against the exact counts of the authors' classes (reference doc, section 1a).
EXACT = {'celeba': 13_587_459, 'metfaces': 219_771_267, 'afhq-cat': 5_782_531, 'afhq-dog': 13_652_995,
         'afhq-wild': 6_437_891, 'lsun-church': 16_675_459}


@pytest.mark.parametrize('name', sorted(EXACT))
def test_preset_parameter_counts(name):
    preset = presets.load_preset(name)
    with torch.device('meta'):
        G = FastWeightPainter(**presets.generator_kwargs(name, width=64))
    n = sum(p.numel() for p in G.parameters())
    assert n == EXACT[name]
    assert round(n / 1e6) == preset['paper']['gen_params_m']


def test_presets_listed_and_validated():
    assert set(EXACT) | {'tiny'} <= set(presets.list_presets())
    with pytest.raises(ValueError, match='Unknown FPA preset'):
        presets.load_preset('celebahq')
    kw = presets.generator_kwargs('tiny', width=32, steps=None, hidden=48)
    assert kw['steps'] == 32 and kw['hidden'] == 48
