"""Painter benchmark: the naive loop vs the parallel delta rule, and the generator's throughput.

    python -m benchmarks.painter [--repeats 5]

Measured side by side in one run: T = 64, 64x64, batch 20, 3 channels (forward, and forward + backward), then
images/s of the CelebA-preset generator at batch 1 and 64. The last line is the headline ratio.
"""

import argparse

import torch

from benchmarks.common import best_time
from fpa_plugin.core import painter
from fpa_plugin.core.generator import FastWeightPainter
from fpa_plugin.core.presets import generator_kwargs


def painter_inputs(B=20, C=3, T=64, D=64):
    k = torch.softmax(torch.randn(B, C, T, D), -1).requires_grad_()
    v = torch.randn(B, C, T, D).requires_grad_()
    lr = torch.rand(B, C, T).requires_grad_()
    return k, v, lr


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    k, v, lr = painter_inputs()
    rows = {}
    for impl in ['naive', 'parallel']:
        with torch.no_grad():
            fwd = best_time(lambda: painter.paint(k, v, lr, impl=impl), args.repeats)
        both = best_time(lambda: painter.paint(k, v, lr, impl=impl).W.sum().backward(), args.repeats)
        rows[impl] = (fwd, both)
    print(f'{"delta painter, B=20 T=64 64x64 C=3":40s} {"forward ms":>12s} {"fwd+bwd ms":>12s}')
    for impl, (fwd, both) in rows.items():
        print(f'{impl:40s} {fwd * 1e3:12.2f} {both * 1e3:12.2f}')

    G = FastWeightPainter(**generator_kwargs('celeba', width=64)).eval()
    print(f'\n{"generator (CelebA preset, T=64, 64x64)":40s} {"images/s":>12s}')
    for batch in [1, 64]:
        z = torch.randn(batch, G.z_dim)
        with torch.no_grad():
            t = best_time(lambda: G(z), args.repeats)
        print(f'{"batch " + str(batch):40s} {batch / t:12.1f}')

    print(f'\nforward speed-up parallel/naive: {rows["naive"][0] / rows["parallel"][0]:.1f}x')
    print(f'forward+backward speed-up parallel/naive: {rows["naive"][1] / rows["parallel"][1]:.1f}x')


if __name__ == '__main__':
    main()
