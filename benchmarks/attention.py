"""Neighbourhood attention benchmark: the impls side by side, alone and inside the LightGAN discriminator.

    python -m benchmarks.attention [--repeats 3] [--threads 1] [--impls unfold,plain,shifted,fused] [--profile]
        [--malloc keep|default] [--reference-code PATH/fpainter/code]

Measured in one run, min over repeats (interleaved, after a warm-up): forward and forward + backward of the
attention op alone at N = 320 (batch 40 x 8 heads), d = 64, 32x32; then forward + backward of
LightGANDiscriminator(64) at batch 40 as the trainer runs it on real images (main logits + 32x32 head +
reconstruction loss) with each impl, and with attention=False (the floor); with --reference-code, the authors'
Discriminator (as their trainer builds it for FPA, the same parameter count) on the same batch and loss. Then the
arithmetic (GFLOP, FlopCounterMode) of the floor and of the fused D over a float32 matrix product's rate measured in
the same run: the least time such a D can take here, and so the most any D can gain on the authors'. The last line
is the headline ratio.
--profile adds torch.profiler's table of one step of the D with fused attention.
"""

import argparse
import os
import resource
import time

import torch

from torch.utils.flop_counter import FlopCounterMode

from benchmarks import reference_code
from benchmarks.common import matmul_ceiling
from fpa_plugin.core.attention import neighbourhood_attention
from fpa_plugin.core.lightgan import LightGANDiscriminator
from fpa_plugin.stylegan3.host_compat import keep_freed_memory


REFERENCE = "the authors' Discriminator"


def best_times(fns, repeats):
    """{name: (min wall seconds, min CPU seconds of the process)} over `repeats` interleaved rounds, after one
    warm-up call each. On a shared machine the CPU time of a 1-thread run (--threads 1) is the steadier measure."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - t0, time.process_time() - c0))
    return {name: tuple(min(col) for col in zip(*t)) for name, t in times.items()}


def op_step(impl, q, k, v, g, grad):
    def step():
        if grad:
            torch.autograd.grad(neighbourhood_attention(q, k, v, impl=impl), (q, k, v), g)
        else:
            with torch.no_grad():
                neighbourhood_attention(q, k, v, impl=impl)
    return step


def d_step(D, x):
    def step():
        D.zero_grad(set_to_none=True)
        logits, logits32, feats = D.heads(x)
        (logits.sum() + logits32.sum() + D.reconstruction_loss(x, feats)).backward()
    return step


def reference_d_step(D, x):
    def step():
        D.zero_grad(set_to_none=True)
        logits, logits32, aux = D(x, calc_aux_loss=True)
        (logits.sum() + logits32.sum() + aux).backward()
    return step


def make_d(impl):
    torch.manual_seed(0)                                                # the same weights for every variant
    if impl is None:
        return LightGANDiscriminator(64, attention=False)
    return LightGANDiscriminator(64, attn_impl=impl)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--impls', default='unfold,plain,shifted,fused', help='for the op alone')
    parser.add_argument('--d-impls', default='unfold,shifted,fused', help='for the discriminator')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: torch\'s default)')
    parser.add_argument('--profile', action='store_true')
    parser.add_argument('--malloc', choices=['keep', 'default'], default='keep',
                        help="keep: freed memory reused, as CPU training runs (host_compat.keep_freed_memory); "
                             "default: glibc's malloc as it is")
    parser.add_argument('--reference-code', help="the authors' code folder (IDSIA/fpainter/code), optional")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = args.malloc == 'keep' and keep_freed_memory()
    impls, d_impls = args.impls.split(','), args.d_impls.split(',')
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'freed memory {"kept" if kept else "returned (glibc default)"}, '
          f'THP_MEM_ALLOC_ENABLE={os.environ.get("THP_MEM_ALLOC_ENABLE", "unset")}')

    g = torch.Generator().manual_seed(0)
    q, k, v, grad_out = (torch.randn(320, 64, 32, 32, generator=g) for _ in range(4))   # (B*heads, d, H, W)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    fwd = best_times({impl: op_step(impl, q, k, v, grad_out, False) for impl in impls}, args.repeats)
    both = best_times({impl: op_step(impl, q, k, v, grad_out, True) for impl in impls}, args.repeats)
    print(f'\n{"attention op, N=320 d=64 32x32":32s} {"forward ms":>11s} {"fwd+bwd ms":>11s} {"fwd CPU ms":>11s} '
          f'{"f+b CPU ms":>11s}')
    for impl in impls:
        print(f'{impl:32s} {fwd[impl][0] * 1e3:11.1f} {both[impl][0] * 1e3:11.1f} {fwd[impl][1] * 1e3:11.1f} '
              f'{both[impl][1] * 1e3:11.1f}')
    del q, k, v, grad_out

    x = torch.randn(40, 3, 64, 64, generator=g)
    variants = {f'attn_impl={impl}': make_d(impl) for impl in d_impls}
    variants['attention=False (floor)'] = make_d(None)
    steps = {name: d_step(D, x) for name, D in variants.items()}
    if args.reference_code:
        torch.manual_seed(0)
        steps[REFERENCE] = reference_d_step(reference_code.discriminator(args.reference_code, 'cpu'), x)
    times = best_times(steps, args.repeats)
    floor = times['attention=False (floor)']
    print(f'\n{"LightGANDiscriminator(64), batch 40":32s} {"fwd+bwd ms":>11s} {"/ floor":>8s} {"CPU ms":>11s} '
          f'{"/ floor":>8s}')
    for name, (wall, cpu) in times.items():
        print(f'{name:32s} {wall * 1e3:11.0f} {wall / floor[0]:7.2f}x {cpu * 1e3:11.0f} {cpu / floor[1]:7.2f}x')

    gflop = {}
    for name in ['attention=False (floor)', 'attn_impl=fused']:
        if name in steps:
            with FlopCounterMode(display=False) as counter:           # convolutions and matrix products
                steps[name]()
            gflop[name] = counter.get_total_flops() / 1e9
    ceiling = matmul_ceiling(args.repeats) / 1e9
    least = gflop['attention=False (floor)'] / ceiling
    print(f'\nthe floor\'s arithmetic: {gflop["attention=False (floor)"]:.0f} GFLOP; at the {ceiling:.0f} GFLOP/s of a '
          f'float32 matrix product here: {least * 1e3:.0f} ms, the least any D of this architecture can take '
          f'(the floor runs at {least / floor[0]:.0%} of it)')
    if 'attn_impl=fused' in gflop:
        extra = gflop['attn_impl=fused'] - gflop['attention=False (floor)']
        print(f'the attention layers\' projections and products add {extra:.0f} GFLOP: at the floor\'s rate alone '
              f'{1 + extra / gflop["attention=False (floor)"]:.2f}x the floor, before any softmax, norm or '
              f'neighbourhood')
    if REFERENCE in times:
        ref, best = times[REFERENCE][0], min(times[f'attn_impl={impl}'][0] for impl in d_impls)
        work, what = ((gflop['attn_impl=fused'], 'the same arithmetic as ours') if 'attn_impl=fused' in gflop else
                      (gflop['attention=False (floor)'], "at least the floor's arithmetic"))
        print(f'{REFERENCE} / ours (fastest impl): {ref / best:.2f}x; at most {ref * ceiling / work:.2f}x for any D '
              f'with {what} ({work:.0f} GFLOP at the matrix-product rate)')

    if args.profile and 'fused' in d_impls:
        step = d_step(variants['attn_impl=fused'], x)
        with torch.profiler.profile(record_shapes=True) as prof:
            step()
        print('\n' + prof.key_averages(group_by_input_shape=True).table(
            sort_by='self_cpu_time_total', row_limit=25, max_name_column_width=40, max_shapes_column_width=60))

    print(f'\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB')
    if 'fused' in d_impls:
        wall, cpu = (a / b for a, b in zip(times['attn_impl=fused'], floor))
        print(f'\nD with fused attention / D without attention: {wall:.2f}x (wall time; CPU time: {cpu:.2f}x)')


if __name__ == '__main__':
    main()
