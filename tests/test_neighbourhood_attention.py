"""The fused C++ neighbourhood attention against the reference's form (`unfold`), on outputs and every gradient, at
awkward sizes; its double backward; which impl 'auto' runs, and the fallback when the extension cannot be built.

The extension is built once per session (the first build takes about a minute, later sessions load it from the
torch extensions cache). Without a compiler the fused tests skip loudly, and the fallback tests still run.
"""

import os
import time
import warnings

import pytest
import torch

from fpa_plugin.core import attention, ops
from fpa_plugin.core.attention import IMPL_ENV, NEIGHBOURHOOD_IMPLS, LinearAttention, neighbourhood_attention
from fpa_plugin.core.ops import loader

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def ext():
    try:
        return ops.neighbourhood_attention_ext()
    except ops.ExtensionUnavailable as err:
        pytest.skip(f'FUSED ATTENTION NOT TESTED: {err}')


@pytest.fixture
def fresh_auto(monkeypatch):
    """'auto' chooses again (as in a new process), FPA_ATTENTION_IMPL unset."""
    monkeypatch.delenv(IMPL_ENV, raising=False)
    monkeypatch.setattr(attention, '_fused_or_fallback', None)


@pytest.fixture
def calls(monkeypatch):
    """Counts the calls of each impl, reached through NEIGHBOURHOOD_IMPLS as 'auto' does: proves which path ran."""
    counts = {}
    for name, fn in list(NEIGHBOURHOOD_IMPLS.items()):
        def counted(*args, _name=name, _fn=fn):
            counts[_name] = counts.get(_name, 0) + 1
            return _fn(*args)
        monkeypatch.setitem(NEIGHBOURHOOD_IMPLS, name, counted)
    return counts


def qkv(N, d, H, W, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(N, d, H, W, generator=g, dtype=torch.float64) * 0.5).to(dtype).requires_grad_()
            for _ in range(3)]


def assert_rel_close(name, got, want, tol):
    err = ((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-300)).item()
    assert err <= tol, f'{name}: relative error {err:.2e} > {tol:.0e}'


def assert_matches_reference(q, k, v, kernel_size, tol, impl='fused'):
    """impl vs the unfold reference evaluated in float64: output and the gradients of q, k, v."""
    ref_in = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = attention._neighbourhood_unfold(*ref_in, kernel_size)
    out = neighbourhood_attention(q, k, v, kernel_size, impl=impl)
    assert out.shape == q.shape and out.dtype == q.dtype
    assert_rel_close('out', out, ref, tol)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = torch.autograd.grad(out, (q, k, v), g.to(q.dtype))
    ref_grads = torch.autograd.grad(ref, ref_in, g)
    for name, got, want in zip(['grad q', 'grad k', 'grad v'], grads, ref_grads):
        assert_rel_close(name, got, want, tol)

#----------------------------------------------------------------------------
# Fused vs the reference.

@pytest.mark.parametrize('N', [1, 3])
@pytest.mark.parametrize('d', [1, 3, 64])
@pytest.mark.parametrize('H', [1, 2, 5, 7, 32])
@pytest.mark.parametrize('W', [1, 2, 5, 7, 32])
def test_fused_matches_unfold(ext, N, d, H, W):
    assert_matches_reference(*qkv(N, d, H, W, torch.float64), 3, tol=1e-12)
    assert_matches_reference(*qkv(N, d, H, W, torch.float32), 3, tol=2e-6)


@pytest.mark.parametrize('kernel_size', [1, 5, 7])
@pytest.mark.parametrize('shape', [(2, 3, 6, 9), (1, 8, 3, 2), (2, 16, 11, 17)])
def test_fused_other_kernel_sizes(ext, kernel_size, shape):
    assert_matches_reference(*qkv(*shape, torch.float64), kernel_size, tol=1e-12)
    assert_matches_reference(*qkv(*shape, torch.float32), kernel_size, tol=2e-6)


def test_fused_large_logits_and_noncontiguous(ext):
    """Logits of +-100 (the softmax must subtract the max) on strided views, as LinearAttention's chunks are."""
    q, k, v = qkv(2, 8, 9, 12, torch.float64)
    kv = torch.randn(2, 16, 12, 9, dtype=torch.float64).transpose(2, 3) * 10       # (2, 16, 9, 12), strided
    k, v = (t.detach().requires_grad_() for t in kv.chunk(2, dim=1))
    assert not k.is_contiguous()
    assert_matches_reference(q * 10, k, v, 3, tol=1e-12)


def test_fused_rejects_what_it_does_not_take(ext):
    q, k, v = qkv(1, 2, 4, 4)
    with pytest.raises(RuntimeError, match='kernel_size'):
        neighbourhood_attention(q, k, v, 9, impl='fused')
    with pytest.raises(RuntimeError, match='shapes'):
        neighbourhood_attention(q, k[:, :1], v, 3, impl='fused')


def test_fused_threads(ext):
    """Bands of rows per thread (fewer samples than threads) and whole samples per thread give the same result."""
    q, k, v, g = (t.detach() for t in qkv(1, 64, 29, 33) + qkv(1, 64, 29, 33, seed=1)[:1])
    threads = torch.get_num_threads()
    results = []
    try:
        for n in [1, 4]:
            torch.set_num_threads(n)
            out, attn = ext.forward(q, k, v, 3)
            results.append([out, attn, *ext.backward(g, q, k, v, attn, 3)])
    finally:
        torch.set_num_threads(threads)
    for name, a, b in zip(['out', 'attn', 'grad q', 'grad k', 'grad v'], *results):
        assert torch.equal(a, b), name


def test_fused_double_backward(ext):
    """The gradient penalty differentiates through the input gradient: gradgradcheck through 'fused' (float64)."""
    q, k, v = qkv(2, 2, 3, 4, torch.float64)
    fused = lambda *t: neighbourhood_attention(*t, impl='fused')
    assert torch.autograd.gradcheck(fused, (q, k, v))                  # first order: the C++ backward
    assert torch.autograd.gradgradcheck(fused, (q, k, v), fast_mode=True)   # second order: through 'plain'

#----------------------------------------------------------------------------
# Which impl runs.

def test_auto_picks_fused(ext, fresh_auto, calls):
    q, k, v = qkv(2, 4, 5, 6)
    with warnings.catch_warnings():
        warnings.simplefilter('error')                                 # no fallback warning
        neighbourhood_attention(q, k, v)
    assert calls == {'auto': 1, 'fused': 1}
    assert LinearAttention(8).impl == 'auto'


def test_auto_keeps_shifted_where_fused_does_not_apply(fresh_auto, calls, monkeypatch):
    monkeypatch.setattr(loader, '_build', lambda name: pytest.fail('nothing should be built'))
    monkeypatch.setattr(loader, '_loaded', {})
    q, k, v = qkv(1, 4, 5, 6, torch.bfloat16)
    neighbourhood_attention(q, k, v)
    neighbourhood_attention(*qkv(1, 4, 5, 6), kernel_size=9)
    assert calls == {'auto': 2, 'shifted': 2}


def test_env_forces_auto(fresh_auto, calls, monkeypatch):
    monkeypatch.setenv(IMPL_ENV, 'unfold')
    q, k, v = qkv(1, 2, 3, 4)
    neighbourhood_attention(q, k, v)
    neighbourhood_attention(q, k, v, impl='plain')                    # an explicit impl is used as given
    assert calls == {'auto': 1, 'unfold': 1, 'plain': 1}
    monkeypatch.setenv(IMPL_ENV, 'fast')
    with pytest.raises(ValueError, match=IMPL_ENV):
        neighbourhood_attention(q, k, v)


def test_fallback_warns_once_and_matches(fresh_auto, calls, monkeypatch):
    def no_compiler(name):
        raise RuntimeError('no C++ compiler here')
    monkeypatch.setattr(loader, '_build', no_compiler)
    monkeypatch.setattr(loader, '_loaded', {})
    q, k, v = qkv(2, 5, 7, 5, torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert_matches_reference(q, k, v, 3, tol=1e-12, impl='auto')
        neighbourhood_attention(q, k, v)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert 'no C++ compiler here' in messages[0] and 'shifted' in messages[0]
    assert calls == {'auto': 2, 'shifted': 2}
    with pytest.raises(ops.ExtensionUnavailable, match='no C\\+\\+ compiler here'):
        neighbourhood_attention(q, k, v, impl='fused')                 # asked for explicitly: an error


def test_stale_build_lock_is_reported_not_waited_on(monkeypatch, tmp_path):
    """A lock file left by a killed build would make cpp_extension wait forever: an old one means 'unavailable'."""
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    monkeypatch.setattr(loader, '_loaded', {})
    lock = loader.build_dir('neighbourhood_attention') / 'lock'
    assert lock.parent.is_relative_to(tmp_path)
    lock.touch()
    old = time.time() - loader.STALE_LOCK_S - 60
    os.utime(lock, (old, old))
    with pytest.raises(ops.ExtensionUnavailable, match='lock'):
        loader.load('neighbourhood_attention')

#----------------------------------------------------------------------------
# LinearAttention (batched products over heads, per-axis softmaxes) vs its equations written out per head.

def linear_attention_equations(m, x):
    """lightweight-gan's layer as its equations read: separate projections, explicit scales, concatenation."""
    B, _, H, W = x.shape
    h, d = m.heads, m.dim_head
    heads = lambda t: t.reshape(B, h, d, H * W)
    lq, q = heads(m.to_lin_q(x)), heads(m.to_q(x))
    lk, lv = map(heads, m.to_lin_kv(x).chunk(2, dim=1))
    k, v = map(heads, m.to_kv(x).chunk(2, dim=1))
    lq, lk = lq.softmax(dim=2) * m.scale, lk.softmax(dim=3)
    context = torch.einsum('bhdn,bhen->bhde', lk, lv)
    lin = torch.nn.functional.gelu(torch.einsum('bhdn,bhde->bhen', lq, context))
    local = attention._neighbourhood_unfold(*(t.reshape(B * h, d, H, W) for t in (q * m.scale, k, v)), m.kernel_size)
    return m.to_out(torch.cat([lin.reshape(B, h * d, H, W), local.reshape(B, h * d, H, W)], dim=1))


@pytest.mark.parametrize('impl', ['fused', 'shifted'])
def test_linear_attention_matches_its_equations(impl, request):
    if impl == 'fused':
        request.getfixturevalue('ext')
    torch.manual_seed(0)
    m = LinearAttention(6, dim_head=4, heads=3, impl=impl).double()
    for p in m.parameters():                                            # non-trivial biases and weights
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64, requires_grad=True)
    out, want = m(x), linear_attention_equations(m, x)
    assert_rel_close('out', out, want, 1e-12)
    g = torch.randn_like(out)
    params = [x, *m.parameters()]
    for i, (got, ref) in enumerate(zip(torch.autograd.grad(out, params, g), torch.autograd.grad(want, params, g))):
        assert_rel_close(f'grad {i}', got, ref, 1e-12)
