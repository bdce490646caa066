"""Generator throughput, side by side in one process (issue: performance).

    python -m benchmarks.generator [--batches 1,20,64] [--repeats 3] [--reference-code PATH/fpainter/code]
        [--device cuda] [--compile]

At T = 64, 64x64, the CelebA preset (Table 3): images/s of our generator with the parallel painter and with the
naive loop painter, of the bare LSTM alone (input generator + LSTM: the floor the painter is measured against),
of StyleGAN2's generator at 64x64 with StyleGAN3's --cfg=stylegan2 defaults (when a StyleGAN3 checkout is
installed), of bf16 autocast, and, with --reference-code, of the authors' generator class. Then forward+backward
at batch 20, and GFLOP/s achieved against a 2048^3 matrix product measured in the same run (the machine's
ceiling). On a GPU (--device cuda, the default where one is present) the timings synchronise the device and the
ceiling is a float32 product (TF32 off); --compile adds a torch.compile row (mode reduce-overhead: CUDA graphs
on a GPU, which remove the per-step launch cost of batch-1 generation). The last line is the headline ratio:
parallel-painter throughput over the bare LSTM's at batch 64.
"""

import argparse
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import reference_code
from benchmarks.common import best_time, matmul_ceiling
from fpa_plugin.core.generator import FastWeightPainter
from fpa_plugin.core.presets import generator_kwargs

REFERENCE = "the authors' generator"

#----------------------------------------------------------------------------

def flops(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def lstm_flops(lstm, steps):
    """Multiply-adds x 2 of an nn.LSTM run over `steps` for one sequence: FlopCounterMode does not see inside the
    fused LSTM kernels (oneDNN, cuDNN), which are most of an FPA's arithmetic."""
    sizes = [lstm.input_size] + [lstm.hidden_size] * (lstm.num_layers - 1)
    return sum(2 * 4 * lstm.hidden_size * (n + lstm.hidden_size) for n in sizes) * steps


def stylegan2_generator(device):
    """StyleGAN2's G at 64x64 with train.py's --cfg=stylegan2 defaults, or None without a StyleGAN3 checkout."""
    try:
        from fpa_plugin.stylegan3 import checkout
        checkout.import_host()
        from training.networks_stylegan2 import Generator
    except Exception as err:                                            # noqa: BLE001 (report and go on)
        print(f'(StyleGAN2 skipped: {err})', file=sys.stderr)
        return None
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3, channel_base=32768,
                  channel_max=512, mapping_kwargs=dict(num_layers=8)).eval().to(device)
    return lambda z: G(z, None, noise_mode='const')


#----------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batches', default='1,20,64')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--reference-code', help="the authors' code folder (IDSIA/fpainter/code), optional")
    parser.add_argument('--bf16-max-batch', type=int, default=None,
                        help='largest batch for the bf16 row (default: 1 on CPU, all on a GPU): a CPU without bf16 '
                             'units runs it ~500x slower')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--compile', action='store_true', help='add a torch.compile row (slow to compile on CPU)')
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(',')]
    device = torch.device(args.device)
    if args.bf16_max_batch is None:
        args.bf16_max_batch = max(batches) if device.type == 'cuda' else 1
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False   # float32 means float32
    torch.manual_seed(0)

    G = FastWeightPainter(**generator_kwargs('celeba', width=64)).eval().to(device)
    G_naive = FastWeightPainter(**generator_kwargs('celeba', width=64, impl='naive')).eval().to(device)
    G_naive.load_state_dict(G.state_dict())
    G_bf16 = FastWeightPainter(**generator_kwargs('celeba', width=64), amp='bfloat16').eval().to(device)
    G_bf16.load_state_dict(G.state_dict())
    lstm_only = lambda z: G.hidden_states(G.latent(z))                  # the floor: everything before the painter
    rows = {'ours, parallel painter': G, 'ours, naive painter': G_naive, 'bare LSTM (floor)': lstm_only,
            'ours, bf16 autocast': G_bf16}
    if args.compile:
        rows['ours, torch.compile'] = torch.compile(G, mode='reduce-overhead' if device.type == 'cuda' else None)
    sg2 = stylegan2_generator(device)
    if sg2 is not None:
        rows['StyleGAN2 G (cfg=stylegan2)'] = sg2
    if args.reference_code:
        rows[REFERENCE] = reference_code.generator(args.reference_code, device).eval()

    ceiling = matmul_ceiling(args.repeats, device)
    gflop_per_image = (flops(lambda: G(torch.randn(1, G.z_dim, device=device)))
                       + lstm_flops(G.sequence_processor.lstm, G.steps)) / 1e9
    print(f'CelebA preset, T=64, 64x64, {device.type}: {gflop_per_image:.2f} GFLOP per image; '
          f'float32 matrix-product ceiling {ceiling / 1e9:.0f} GFLOP/s\n')
    print(f'{"images/s (forward)":32s}' + ''.join(f'{"batch " + str(b):>12s}' for b in batches))
    speed = {}
    for name, fn in rows.items():
        z_dim = 512 if name.startswith('StyleGAN2') else G.z_dim
        cells = []
        for b in batches:
            if name == 'ours, bf16 autocast' and b > args.bf16_max_batch:
                cells.append(f'{"-":>12s}')
                continue
            z = torch.randn(b, z_dim, device=device)
            with torch.no_grad():
                speed[name, b] = b / best_time(lambda: fn(z), args.repeats)
            cells.append(f'{speed[name, b]:12.1f}')
        print(f'{name:32s}' + ''.join(cells))

    big = max(batches)
    achieved = speed['ours, parallel painter', big] * gflop_per_image
    print(f'\nours at batch {big}: {achieved:.0f} GFLOP/s = {achieved * 1e9 / ceiling:.0%} of the matrix-product '
          f'ceiling')

    print(f'\n{"forward+backward, batch 20":32s}{"ms":>12s}')
    z = torch.randn(20, G.z_dim, device=device)
    train = {}
    for name, fn in [('ours, parallel painter', G.train()), ('ours, naive painter', G_naive.train()),
                     ('bare LSTM (floor)', lstm_only)]:
        train[name] = best_time(lambda: fn(z).square().mean().backward(), args.repeats)
        print(f'{name:32s}{train[name] * 1e3:12.1f}')
    over = lambda name: train[name] / train['bare LSTM (floor)'] - 1
    print(f'painter overhead over the bare LSTM, forward+backward: parallel {over("ours, parallel painter"):+.0%}, '
          f'naive {over("ours, naive painter"):+.0%}')
    if REFERENCE in rows:
        print(f'ours / {REFERENCE}, forward: ' + ', '.join(
            f'batch {b} {speed["ours, parallel painter", b] / speed[REFERENCE, b]:.1f}x' for b in batches))
    amp = max(b for b in batches if b <= args.bf16_max_batch) if min(batches) <= args.bf16_max_batch else None
    if amp is not None:
        print(f'bf16 autocast / float32 at batch {amp}: '
              f'{speed["ours, bf16 autocast", amp] / speed["ours, parallel painter", amp]:.2f}x')
    print(f'painter overhead over the bare LSTM at batch {big}, forward: '
          f'{speed["bare LSTM (floor)", big] / speed["ours, parallel painter", big] - 1:+.1%}')


if __name__ == '__main__':
    main()
