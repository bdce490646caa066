"""Training speed and memory in StyleGAN3's own loop, the configurations side by side (issue: performance).

    python -m benchmarks.training --data=../shared/data/utkface-train-64x64.zip [--batch=20] [--steps=8]
        [--cfgs=fpa,fpa-unet,lightgan,stylegan2,fpa-bf16] [--fpa-preset=celeba] [--disc-size=paper]
        [--gen-size=paper] [--reference-code=PATH/fpainter/code]

Each configuration runs in a fresh process (so peak memory is its own) through train.py's option parsing and
`training_loop.training_loop`, on the same data and batch: one warm-up step (tick 0), then `--steps` steps (tick 1,
whose sec/kimg is reported). The sample grid the loop paints first is cut to 2x2 (not timed, but StyleGAN2's G takes
~10 min on CPU for the full 32x32 grid). No snapshots or metrics, except that the fpa run's tick-0 pickle is what
fpa-unet refines. Per configuration: sec/kimg, peak CPU memory (GB, the process's max RSS), peak GPU memory
(StyleGAN3's Resources/peak_gpu_mem_gb; 0 on CPU).
--profile adds one more fpa run under torch.profiler: where an FPA step's time goes, by the loss's record_function
ranges (G forward/backward, D forward/backward, gradient penalty). --malloc-ab adds one more fpa run with glibc's
default malloc (FPA_KEEP_FREED_MEMORY=0; the loop otherwise keeps freed memory for reuse on CPU, see
host_compat.keep_freed_memory). --reference-code adds the configuration `reference`: the authors' generator and
discriminator (their classes: the CelebA preset, their D as their trainer builds it) trained by the work of one of
their steps (benchmarks.reference_code.TrainingStep) on the same data and batch, with the same warm-up, step count
and gradient-penalty steps, in its own process; use a multiple of 4 steps, so that each side's share of penalty
steps is the trainer's. The last line is the headline: fpa's sec/kimg over stylegan2's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CFG_ARGS = {  # configuration -> train.py options besides the shared ones ({...} filled from the command line)
    'fpa':       ['--cfg=fpa', '--fpa-preset={fpa_preset}', '--disc-size={disc_size}'],
    'fpa-bf16':  ['--cfg=fpa', '--fpa-preset={fpa_preset}', '--disc-size={disc_size}', '--fpa-amp=bfloat16'],
    'fpa-unet':  ['--cfg=fpa-unet', '--fpa-pkl={fpa_pkl}', '--unet-size={unet_size}'],
    'lightgan':  ['--cfg=lightgan', '--gen-size={gen_size}', '--disc-size={disc_size}'],
    'stylegan2': ['--cfg=stylegan2', '--gamma=0.05'],
}
VARIANT_OF = {'fpa-profile': 'fpa', 'fpa-default-malloc': 'fpa'}      # extra runs of a configuration
REFERENCE = 'reference'                                                 # the authors' step (--reference-code)
RANGES = ['Gmain_forward', 'Gmain_backward', 'Dmain_forward', 'Dgp_forward', 'Dmain_backward']

#----------------------------------------------------------------------------
# One configuration, in its own process.

def training_options(argv):
    """-> train.py's training options for these command-line options (its own parser), without launching."""
    import train
    captured = {}
    launch, train.launch_training = train.launch_training, lambda c, **_: captured.update(c=c)
    try:
        train.main(argv, standalone_mode=False)
    finally:
        train.launch_training = launch
    return captured['c']


def run_one(args):
    from fpa_plugin.stylegan3 import checkout
    root = checkout.locate()
    os.chdir(root)
    checkout.import_host()
    sys.path.insert(0, str(root))
    if args.one == REFERENCE:
        return run_reference(args)
    import torch
    import train
    from torch_utils import training_stats

    fill = dict(fpa_preset=args.fpa_preset, disc_size=args.disc_size, gen_size=args.gen_size,
                unet_size=args.unet_size, fpa_pkl=args.fpa_pkl)
    argv = [f'--outdir={args.workdir}', f'--data={args.data}', '--gpus=1', f'--batch={args.batch}', '--kimg=1',
            '--metrics=none', '--workers=1', '--seed=0', *[a.format(**fill) for a in CFG_ARGS[args.one]]]
    c = training_options(argv)
    c.run_dir = str(Path(args.workdir) / args.one)
    os.makedirs(c.run_dir)
    c.kimg_per_tick = args.steps * args.batch / 1000                   # tick 1 = exactly `steps` steps
    c.total_kimg = (args.steps + 1) * args.batch / 1000
    c.image_snapshot_ticks = None
    c.network_snapshot_ticks = 1000 if args.one == 'fpa' else None      # fpa: the tick-0 pickle for fpa-unet
    training_stats.init_multiprocessing(rank=0, sync_device=None)
    grid = train.training_loop.setup_snapshot_image_grid               # the loop paints a 32x32 grid before tick 0
    def small_grid(*a, **k):                                            # (StyleGAN2's G: ~10 min on CPU); 2x2 here
        _, images, labels = grid(*a, **k)
        return (2, 2), images[:4], labels[:4]
    train.training_loop.setup_snapshot_image_grid = small_grid
    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            train.training_loop.training_loop(rank=0, **c)
        ranges = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages() if e.key in RANGES}
    else:
        train.training_loop.training_loop(rank=0, **c)
        ranges = {}
    last = json.loads((Path(c.run_dir) / 'stats.jsonl').read_text().splitlines()[-1])
    import resource
    result = dict(cfg=args.one, sec_per_kimg=last['Timing/sec_per_kimg']['mean'],
                  peak_mem_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
                  peak_gpu_mem_gb=last.get('Resources/peak_gpu_mem_gb', {}).get('mean', 0.0),
                  phases={k.split('/')[1]: v['mean'] for k, v in last.items()
                          if k.startswith('Timing/') and k.split('/')[1][0] in 'GD'},
                  ranges=ranges)
    print('RESULT ' + json.dumps(result))


def run_reference(args):
    """The authors' step, timed as the loop times ours: one warm-up step, then `steps` steps (wall clock, data
    included); the gradient penalty on their trainer's steps 0, 4, 8, ... (the loop's: the same)."""
    import resource
    import time
    import numpy as np
    import torch
    from benchmarks import reference_code
    from fpa_plugin.stylegan3.host_compat import keep_freed_memory
    from training.dataset import ImageFolderDataset

    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')     # where the loop runs (--gpus=1)
    if device.type == 'cpu':
        keep_freed_memory()                                             # as the loop does on CPU
    torch.manual_seed(0)
    data = ImageFolderDataset(args.data)
    step = reference_code.TrainingStep(args.reference_code, args.batch, device)
    order = iter(np.random.default_rng(0).permutation(len(data)))
    reals = lambda: torch.from_numpy(np.stack([data[next(order)][0] for _ in range(args.batch)])).float() / 127.5 - 1
    sync = torch.cuda.synchronize if device.type == 'cuda' else lambda: None
    step(reals())
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step(reals())
    sync()
    seconds = time.perf_counter() - t0
    gpu_gb = torch.cuda.max_memory_allocated() / 2 ** 30 if device.type == 'cuda' else 0.0
    print('RESULT ' + json.dumps(dict(cfg=REFERENCE, sec_per_kimg=seconds / (args.steps * args.batch / 1000),
                                      peak_mem_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
                                      peak_gpu_mem_gb=gpu_gb, phases={}, ranges={})))

#----------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True, help='a 64x64 dataset zip (../shared/data/utkface-train-64x64.zip)')
    parser.add_argument('--batch', type=int, default=20)
    parser.add_argument('--steps', type=int, default=8, help='measured steps per configuration (after one warm-up)')
    parser.add_argument('--cfgs', default='fpa,fpa-unet,lightgan,stylegan2')
    parser.add_argument('--fpa-preset', default='celeba')
    parser.add_argument('--disc-size', default='paper')
    parser.add_argument('--gen-size', default='paper')
    parser.add_argument('--unet-size', default='paper')
    parser.add_argument('--one', help=argparse.SUPPRESS)
    parser.add_argument('--workdir', help=argparse.SUPPRESS)
    parser.add_argument('--fpa-pkl', help=argparse.SUPPRESS)
    parser.add_argument('--profile', action='store_true', help='also profile an fpa run (where its time goes)')
    parser.add_argument('--malloc-ab', action='store_true', help="also an fpa run with glibc's default malloc")
    parser.add_argument('--reference-code', help="the authors' code folder (IDSIA/fpainter/code): adds 'reference'")
    args = parser.parse_args()
    args.data = str(Path(args.data).resolve())
    if args.reference_code:
        args.reference_code = str(Path(args.reference_code).resolve())
    if args.one:
        return run_one(args)

    cfgs = args.cfgs.split(',')
    if unknown := [c for c in cfgs if c not in CFG_ARGS]:
        raise SystemExit(f'Unknown configuration(s) {unknown}: choose from {", ".join(CFG_ARGS)} '
                         f'(--reference-code=PATH adds {REFERENCE!r}, the authors\' step)')
    cfgs += [REFERENCE] if args.reference_code else []
    if 'fpa-unet' in cfgs and 'fpa' not in cfgs:
        raise SystemExit('fpa-unet refines the fpa run\'s pickle: include fpa in --cfgs')
    results = {}
    with tempfile.TemporaryDirectory() as work:
        jobs = (sorted(cfgs, key=lambda c: c != 'fpa') + (['fpa-profile'] if args.profile else [])  # fpa first
                + (['fpa-default-malloc'] if args.malloc_ab else []))
        for cfg in jobs:
            env = dict(os.environ, **({'FPA_KEEP_FREED_MEMORY': '0'} if cfg == 'fpa-default-malloc' else {}))
            cmd = [sys.executable, '-m', 'benchmarks.training', f'--one={VARIANT_OF.get(cfg, cfg)}',
                   f'--workdir={Path(work, cfg)}',
                   *[f'--{k.replace("_", "-")}={v}' for k, v in vars(args).items()
                     if k in ('data', 'batch', 'steps', 'fpa_preset', 'disc_size', 'gen_size', 'unet_size',
                              'reference_code') and v is not None]]
            if cfg == 'fpa-profile':
                cmd.append('--profile')
            if cfg == 'fpa-unet':
                cmd.append(f'--fpa-pkl={sorted(Path(work, "fpa", "fpa").glob("network-snapshot-*.pkl"))[0]}')
            print(f'{cfg}: {args.steps} steps at batch {args.batch}...', flush=True)
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], env=env)
            lines = [l for l in out.stdout.splitlines() if l.startswith('RESULT ')]
            if out.returncode != 0 or not lines:
                raise SystemExit(f'{cfg} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}')
            results[cfg] = json.loads(lines[-1][len('RESULT '):])

    ranges = results.pop('fpa-profile', {}).get('ranges')
    print(f'\nStyleGAN3 training loop, {Path(args.data).name}, batch {args.batch}, {args.steps} steps each, '
          f'{os.environ.get("OMP_NUM_THREADS", os.cpu_count())} CPU threads; fpa preset {args.fpa_preset}, D size {args.disc_size}')
    print(f'{"configuration":<18} {"sec/kimg":>9} {"peak GB":>8} {"GPU GB":>7}  phases (s per tick)')
    for cfg, r in results.items():
        phases = ', '.join(f'{k} {v:.1f}' for k, v in r['phases'].items() if v == v) or '-'   # NaN: not timed
        print(f'{cfg:<18} {r["sec_per_kimg"]:>9.1f} {r["peak_mem_gb"]:>8.2f} {r["peak_gpu_mem_gb"]:>7.2f}  {phases}')
    if ranges:
        total = sum(ranges.values())
        print('\nWhere an fpa step goes (profiled record_function ranges, share of their sum):')
        for name in RANGES:
            if name in ranges:
                print(f'  {name:<16} {ranges[name]:8.1f} s  {100 * ranges[name] / total:5.1f}%')
    if 'fpa-default-malloc' in results:
        print(f'\nfpa sec/kimg, freed memory kept / glibc default malloc: '
              f'{results["fpa"]["sec_per_kimg"] / results["fpa-default-malloc"]["sec_per_kimg"]:.2f}')
    if 'fpa' in results and 'fpa-bf16' in results:
        print(f'\nfpa sec/kimg, float32 / bf16 autocast (--fpa-amp=bfloat16): '
              f'{results["fpa"]["sec_per_kimg"] / results["fpa-bf16"]["sec_per_kimg"]:.2f}x')
    if 'fpa' in results and REFERENCE in results:
        print(f'\nthe authors\' step / fpa in StyleGAN3\'s loop, sec/kimg: '
              f'{results[REFERENCE]["sec_per_kimg"] / results["fpa"]["sec_per_kimg"]:.2f}x')
    if 'fpa' in results and 'stylegan2' in results:
        print(f'\nfpa sec/kimg / stylegan2 sec/kimg: {results["fpa"]["sec_per_kimg"] / results["stylegan2"]["sec_per_kimg"]:.2f}')


if __name__ == '__main__':
    main()
