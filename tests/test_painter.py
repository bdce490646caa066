"""The fast learning rules against their loops (the definitions), in float64, on values and every gradient."""

import pytest
import torch

from fpa_plugin.core import painter
from fpa_plugin.core.painter import naive, parallel


def inputs(B, C, T, Dv, Dk, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.softmax(torch.randn(B, C, T, Dk, generator=g, dtype=torch.float64) * 3, dim=-1)
    v = torch.randn(B, C, T, Dv, generator=g, dtype=torch.float64)
    lr = torch.rand(B, C, T, generator=g, dtype=torch.float64)
    return [x.requires_grad_() for x in (k, v, lr)]


def rel_err(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


@pytest.mark.parametrize('rule', ['delta', 'hebbian'])
@pytest.mark.parametrize('B,C,T,Dv,Dk', [(1, 3, 1, 8, 8), (2, 3, 7, 5, 9), (3, 1, 63, 16, 12), (2, 4, 64, 12, 16)])
def test_fast_matches_loop(rule, B, C, T, Dv, Dk):
    k, v, lr = inputs(B, C, T, Dv, Dk)
    fast = painter.paint(k, v, lr, rule=rule, impl='parallel')
    slow = painter.paint(k, v, lr, rule=rule, impl='naive')
    assert fast.W.shape == (B, C, Dv, Dk)
    assert rel_err(fast.W, slow.W) < 1e-10, 'W'
    assert rel_err(fast.u, slow.u) < 1e-10, 'u'
    g_out = torch.randn_like(fast.W)
    grads = {}
    for name, s in [('fast', fast), ('slow', slow)]:
        grads[name] = torch.autograd.grad(s.W, (k, v, lr), g_out, allow_unused=True)
    for name, gf, gs in zip(['k', 'v', 'lr'], grads['fast'], grads['slow']):
        if rule == 'hebbian' and name == 'lr':
            assert gf is None and gs is None
            continue
        assert rel_err(gf, gs) < 1e-10, f'grad {name}'


def test_delta_two_steps_by_hand():
    k = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)         # (T=2, Dk=2)
    v = torch.tensor([[2.0, 4.0], [1.0, 3.0]], dtype=torch.float64)         # (T=2, Dv=2)
    lr = torch.tensor([0.5, 0.25], dtype=torch.float64)
    # W1 = 0.5 * v1 k1^T = [[1, 0], [2, 0]]
    # W1 k2 = [0.5, 1.0]; u2 = 0.25 * ([1, 3] - [0.5, 1]) = [0.125, 0.5]; W2 = W1 + u2 k2^T
    W2 = torch.tensor([[1.0625, 0.0625], [2.25, 0.25]], dtype=torch.float64)
    for impl in ['naive', 'parallel']:
        s = painter.paint(k[None, None], v[None, None], lr[None, None], rule='delta', impl=impl)
        torch.testing.assert_close(s.W[0, 0], W2, rtol=0, atol=1e-15)


def test_hebbian_is_sum_of_outer_products():
    k, v, lr = inputs(2, 3, 5, 4, 6)
    expected = sum(torch.einsum('bcv,bck->bcvk', v[:, :, t], k[:, :, t]) for t in range(5))
    for impl in ['naive', 'parallel']:
        torch.testing.assert_close(painter.paint(k, v, None, rule='hebbian', impl=impl).W, expected)


def test_oja_matches_its_definition():
    k_raw = torch.randn(1, 1, 3, 4, dtype=torch.float64)
    k = torch.softmax(k_raw, -1)
    v = torch.randn(1, 1, 3, 2, dtype=torch.float64)
    lr = torch.rand(1, 1, 3, dtype=torch.float64)
    W = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(3):
        key = torch.softmax(k[0, 0, t] - W.T @ v[0, 0, t], -1)
        W = W + lr[0, 0, t] * torch.outer(v[0, 0, t], key)
    torch.testing.assert_close(painter.paint(k, v, lr, rule='oja').W[0, 0], W)


@pytest.mark.parametrize('rule', ['delta', 'hebbian', 'oja'])
def test_factors_rebuild_every_step(rule):
    k, v, lr = inputs(2, 3, 6, 5, 7)
    s = painter.paint(k, v, lr, rule=rule, impl='naive')
    torch.testing.assert_close(s.partials()[:, :, -1], s.W)
    torch.testing.assert_close(s.updates().sum(dim=2), s.W)


def test_names_are_validated():
    k, v, lr = inputs(1, 1, 2, 2, 2)
    with pytest.raises(ValueError, match='Unknown learning rule'):
        painter.paint(k, v, lr, rule='hebb')
    with pytest.raises(ValueError, match="no 'parallel' implementation"):
        painter.paint(k, v, lr, rule='oja', impl='parallel')
    with pytest.raises(ValueError, match="no 'fast' implementation"):
        painter.paint(k, v, lr, rule='delta', impl='fast')
    with pytest.raises(ValueError, match='needs learning rates'):
        painter.paint(k, v, None, rule='delta')


def test_default_impl_is_the_fast_form(monkeypatch):
    called = []
    monkeypatch.setitem(painter.RULES['delta'], 'parallel', lambda *a: called.append('parallel') or parallel.delta(*a))
    k, v, lr = inputs(1, 1, 3, 2, 2)
    painter.paint(k, v, lr)
    assert called == ['parallel']
    assert painter.check_rule('oja') == 'naive'
    assert naive.delta is painter.RULES['delta']['naive']


def test_half_precision_inputs_paint_in_float32():
    k, v, lr = (x.detach().to(torch.bfloat16) for x in inputs(1, 3, 8, 4, 4))
    assert painter.paint(k, v, lr).W.dtype == torch.float32
