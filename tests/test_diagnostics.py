"""benchmarks.diagnostics, the snapshot health check: collapse shows as zero spread, uniform keys as 1/width, and
the command prints every row for a real snapshot."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def diagnostics(stylegan3):
    from fpa_plugin.stylegan3 import checkout
    checkout.import_host()
    from benchmarks import diagnostics
    return diagnostics


def tiny_fpa():
    from fpa_plugin.core.presets import generator_kwargs
    from fpa_plugin.stylegan3.networks import FPAGenerator
    kwargs = generator_kwargs('tiny', width=16)
    del kwargs['width'], kwargs['height'], kwargs['channels']
    torch.manual_seed(0)
    return FPAGenerator(c_dim=0, img_resolution=16, img_channels=3, **kwargs)


def test_collapsed_generator_has_zero_spread_and_uniform_keys(diagnostics):
    G = tiny_fpa()
    healthy = diagnostics.generator_health(G, n=8)
    assert healthy['spread across z'] > 1e-3 and healthy['NN / median dist'] > 0.1
    assert 1 / 16 < healthy['mean max key'] <= 1
    assert 30 < healthy['bf16 PSNR dB'] < 150                          # bf16 ran (images differ), and little
    with torch.no_grad():
        G.fpa.update_net.linear.weight.zero_()                          # k, v, lr no longer depend on z,
        G.fpa.update_net.linear.bias[:3 * 16].zero_()                   # and the keys (first C * width) are uniform
    collapsed = diagnostics.generator_health(G, n=8)
    assert collapsed['spread across z'] < 1e-6 and collapsed['NN / median dist'] == 0
    assert collapsed['mean max key'] == pytest.approx(1 / 16)
    assert collapsed['uniform key'] == 1 / 16


def test_bf16_psnr_of_a_generator_set_to_bf16(diagnostics):
    """Against float32 images also when G itself runs under bf16 (then 'its images' are not the reference)."""
    G = tiny_fpa()
    plain = diagnostics.generator_health(G, n=8)['bf16 PSNR dB']
    G.fpa.amp = 'bfloat16'
    assert diagnostics.generator_health(G, n=8)['bf16 PSNR dB'] == pytest.approx(plain)
    assert G.fpa.amp == 'bfloat16'


def test_near_duplicates(diagnostics):
    torch.manual_seed(0)
    spread = torch.randn(64, 3, 8, 8)
    modes = spread[:4].repeat(16, 1, 1, 1) + 0.01 * torch.randn(64, 3, 8, 8)   # 4 modes, 16 near-copies each
    assert diagnostics.nearest_over_median(spread) > 0.7
    assert diagnostics.nearest_over_median(modes) < 0.05


def test_input_gradient_norm_is_the_penalised_norm(diagnostics):
    class Linear(torch.nn.Module):                                      # heads = (a.x, b.x): gradient a + b
        c_dim = 0

        def heads(self, x, c):
            return (x.flatten(1) @ a)[:, None], (x.flatten(1) @ b)[:, None], None
    a, b = torch.randn(3 * 4 * 4), torch.randn(3 * 4 * 4)
    norm = diagnostics.input_gradient_norm(Linear(), torch.randn(5, 3, 4, 4))
    assert norm == pytest.approx((a + b).norm().item(), rel=1e-5)


def test_command_on_a_snapshot(fpa_run, make_dataset):
    out = subprocess.run([sys.executable, '-m', 'benchmarks.diagnostics',
                          f'--network={fpa_run / "network-snapshot-000001.pkl"}', f'--data={make_dataset(16)}', '--n=4'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for row in ['G ', 'G_ema ', 'flat grey image', 'real images']:
        line = next(l for l in out.stdout.splitlines() if l.strip().startswith(row.strip()) and re.search(r'\d', l))
        assert all(float(x) >= 0 for x in re.findall(r'\d+\.\d+', line)), line
