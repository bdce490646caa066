"""The CPU-scale study of the paper's findings (issue: evidence that it learns), one command:

    python -m benchmarks.study --data=../shared/data/utkface-train-64x64.zip --outdir=study [--kimg=32] [--jobs=2]

On the 64x64 faces reduced to 32x32 (StyleGAN3's dataset_tool.py), at an equal budget (the same kimg and batch for
runs 1-4, FID every kimg / evals; run 1 then goes on to --run1-kimg, and run 5 gets half the budget), with the
same code a GPU user runs:

    1 fpa-delta-T32     FPA, delta rule, T = 32 (full rank at 32x32), the `tiny` preset
    2 fpa-hebbian-T32   the same with the purely additive rule (paper Sec. 4.3)
    3 fpa-delta-T8      the same with T = 8 (paper Table 2)
    4 stylegan2, lightgan   the baselines at reduced capacity
    5 fpa-unet          FPA + U-Net on run 1's last snapshot (FPA frozen)

Every LightGAN-D run uses `--disc-size=tiny` (the `small` sizes cost ~8x more per kimg here), and every D the
minibatch-std feature (`--mbstd-group=4`: without it an FPA's first kimg collapse to one image). The runs go `--jobs` at a time, each with its share of the cores,
and continue where they stopped if the study is started again (`--resume=auto`). Then every snapshot is scored
with the offline FID (`fid1k_full`: 1,000 generated images against all 7,721 training images: see --help), and
`fpa-report`, sample grids and run 1's painting go to `<outdir>/results/`.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MBSTD = '--mbstd-group=4'  # every D sees batch diversity (StyleGAN2's D has it by default): FPAs collapse early without
RUNS = {  # name -> train.py arguments (besides the common ones)
    'fpa-delta-T32':   ['--cfg=fpa', '--fpa-preset=tiny', '--disc-size=tiny', MBSTD],
    'fpa-hebbian-T32': ['--cfg=fpa', '--fpa-preset=tiny', '--fpa-rule=hebbian', '--disc-size=tiny', MBSTD],
    'fpa-delta-T8':    ['--cfg=fpa', '--fpa-preset=tiny', '--fpa-steps=8', '--disc-size=tiny', MBSTD],
    'stylegan2':       ['--cfg=stylegan2', '--cbase=2048', '--cmax=64', '--map-depth=2', '--gamma=0.01',
                        '--aug=noaug', '--glr=0.0025', '--dlr=0.0025', MBSTD],
    'lightgan':        ['--cfg=lightgan', '--gen-size=tiny', '--disc-size=tiny', MBSTD],
}
UNET = ['--cfg=fpa-unet', '--unet-size=tiny']

#----------------------------------------------------------------------------

def log(msg):
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


def run(cmd, cwd, env=None, logfile=None):
    log(' '.join(map(str, cmd)))
    out = open(logfile, 'a') if logfile else None
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=out,
                          stderr=subprocess.STDOUT if out else None)
    if proc.returncode != 0:
        raise SystemExit(f'failed ({proc.returncode}): {" ".join(map(str, cmd))}' + (f'; see {logfile}' if out else ''))


def run_dir(outdir, name):
    parent = outdir / 'runs' / name
    dirs = sorted(p for p in parent.glob('0*') if p.is_dir()) if parent.exists() else []
    return dirs[-1] if dirs else None


def train(root, outdir, name, args, data, kimg, batch, snap, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')
    (outdir / 'runs' / name).mkdir(parents=True, exist_ok=True)
    run([sys.executable, 'train.py', f'--outdir={outdir / "runs" / name}', f'--data={data}', '--gpus=1',
         f'--batch={batch}', f'--kimg={kimg}', '--tick=1', f'--snap={snap}', '--metrics=none', '--workers=1',
         '--seed=0', '--resume=auto', *args], cwd=root, env=env, logfile=outdir / 'runs' / f'{name}.log')
    return run_dir(outdir, name)


def score(root, outdir, name, data, metric, threads, which='all'):
    """FID of every snapshot (which='all') or of the last one ('last') of a run, where not scored yet
    (calc_metrics.py appends to the run's metric-*.jsonl)."""
    directory = run_dir(outdir, name)
    jsonl = directory / f'metric-{metric}.jsonl'
    done = {json.loads(l)['snapshot_pkl'] for l in jsonl.read_text().splitlines()} if jsonl.exists() else set()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    pkls = sorted(directory.glob('network-snapshot-*.pkl'))
    for pkl in pkls if which == 'all' else pkls[-1:]:
        if pkl.name not in done:
            run([sys.executable, 'calc_metrics.py', f'--network={pkl}', f'--metrics={metric}', f'--data={data}',
                 '--gpus=1'], cwd=root, env=env, logfile=outdir / 'runs' / f'{name}-fid.log')

def small_grid(src, dst, res, n=8):
    """The top-left n x n images of a StyleGAN3 sample grid (fakes*.png holds up to 32 x 32 of them)."""
    from PIL import Image
    with Image.open(src) as grid:
        grid.crop((0, 0, n * res, n * res)).save(dst)

#----------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True, help='the 64x64 faces (../shared/data/utkface-train-64x64.zip)')
    parser.add_argument('--outdir', default='study')
    parser.add_argument('--kimg', type=int, default=32, help='budget of runs 1-4 (run 5: half); the tiny FPA '
                        'paints faces from ~32 kimg')
    parser.add_argument('--run1-kimg', type=int, help='run 1 then continues to this (default: 2 x --kimg)')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--evals', type=int, default=2, help='snapshots (FID points) per run, after the first')
    parser.add_argument('--jobs', type=int, default=2, help='runs at a time')
    parser.add_argument('--metric', default='fid1k_full',
                        help='1k generated images: the Inception network costs ~0.12 s per image on 2 CPU cores, so '
                             'FID dominates the budget; 1k images give a biased but run-to-run comparable FID '
                             '(fid2k_full, fid5k_full for more)')
    parser.add_argument('--only', help='comma-separated run names (default: all)')
    parser.add_argument('--score', choices=['all', 'last'], default='all',
                        help="FID of every snapshot, or only of each run's last (~7 min per FID on one core here)")
    args = parser.parse_args()

    from fpa_plugin.stylegan3 import checkout
    root = checkout.install(log=log)
    outdir = Path(args.outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    data = outdir / 'utkface-32x32.zip'
    if not data.exists():
        run([sys.executable, 'dataset_tool.py', f'--source={Path(args.data).resolve()}', f'--dest={data}',
             '--resolution=32x32'], cwd=root)
    checkout.import_host()
    import dnnlib  # noqa: E402  (importable once the checkout is on the path)
    from fpa_plugin.stylegan3 import fid_net
    if not fid_net.cache_path(dnnlib.make_cache_dir_path()).exists():
        run(['fpa-stylegan3', 'fid-net'], cwd=None)

    names = [n for n in RUNS if not args.only or n in args.only.split(',')]
    threads = max(1, os.cpu_count() // args.jobs)
    snap = max(1, args.kimg // args.evals)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda n: train(root, outdir, n, RUNS[n], data, args.kimg, args.batch, snap, threads), names))
    if 'fpa-delta-T32' in names:                                        # the longer run 1 (--resume=auto extends it)
        train(root, outdir, 'fpa-delta-T32', RUNS['fpa-delta-T32'], data, args.run1_kimg or 2 * args.kimg,
              args.batch, snap, os.cpu_count())
    if not args.only or 'fpa-unet' in args.only.split(','):
        base = max(run_dir(outdir, 'fpa-delta-T32').glob('network-snapshot-*.pkl'))
        train(root, outdir, 'fpa-unet', [*UNET, f'--fpa-pkl={base}'], data, args.kimg // 2, args.batch,
              max(1, snap // 2), os.cpu_count())
        names.append('fpa-unet')
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda n: score(root, outdir, n, data, args.metric, threads, args.score), names))

    results = outdir / 'results'
    results.mkdir(exist_ok=True)
    dirs = [run_dir(outdir, n) for n in names]
    run([sys.executable, '-m', 'fpa_plugin.tools.report', *dirs, f'--metric={args.metric}',
         f'--outdir={results}'], cwd=None)
    for name, directory in zip(names, dirs):
        small_grid(max(directory.glob('fakes0*.png')), results / f'samples-{name}.png', res=32)
    run1 = run_dir(outdir, 'fpa-delta-T32')                            # the painting is run 1's, also with --only
    if run1 is not None:
        run([sys.executable, '-m', 'fpa_plugin.tools.paint', f'--network={max(run1.glob("network-snapshot-*.pkl"))}',
             '--seeds=0-3', f'--outdir={results / "painting"}', '--scale=2'], cwd=None)
    log(f'done: {results}')


if __name__ == '__main__':
    main()
