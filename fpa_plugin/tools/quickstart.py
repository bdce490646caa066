"""`fpa-quickstart`: the main job. Sets up StyleGAN3, trains a small FPA on CPU for a few minutes on the bundled
emoji dataset, and leaves everything in one folder:

    <outdir>/run/              StyleGAN3's run directory: log.txt, stats.jsonl, snapshots, fakes*.png
    <outdir>/samples.png       the last sample grid of the run
    <outdir>/painting/         fpa-paint: steps.png (the paper's Fig. 5 layout), paint-seed*.gif, keys-seed*.png
    <outdir>/report/           fpa-report: report.md, runs.csv, and the metric plot when a metric was computed
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from fpa_plugin.stylegan3 import checkout, patching
from fpa_plugin.training_configs.datasets import default_dataset

#----------------------------------------------------------------------------

def _run(what, cmd, cwd=None):
    click.echo(f'$ {" ".join(map(str, cmd))}')
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    if proc.returncode != 0:
        raise click.ClickException(f'{what} failed (exit {proc.returncode}); its output is above')


@click.command()
@click.option('--outdir', help='Where to put everything', default='fpa-quickstart', show_default=True)
@click.option('--kimg', help='Training length in thousands of images', type=click.IntRange(min=1), default=6,
              show_default=True)
@click.option('--resolution', help='Dataset resolution', type=click.Choice(['32', '64']), default='32',
              show_default=True)
@click.option('--batch', help='Batch size', type=click.IntRange(min=1), default=16, show_default=True)
@click.option('--seeds', help='Seeds to paint', default='0-3', show_default=True)
@click.option('--source', help='StyleGAN3 source for the install (offline: a local repository or directory)')
def main(outdir, kimg, resolution, batch, seeds, source):
    """Train a small Fast Weight Painter on the bundled emoji dataset and show how it paints."""
    outdir = Path(outdir).resolve()
    if (outdir / 'run').exists():
        raise click.ClickException(f'{outdir} already holds a quick start; choose another --outdir or remove it')
    try:
        root = checkout.install(source=source, log=click.echo)
    except (checkout.CheckoutError, patching.PatchError, OSError) as err:
        raise click.ClickException(f'{err}\nWithout internet: fpa-quickstart --source /path/to/stylegan3 '
                                   f'(a git repository or a directory of NVlabs/stylegan3 at c233a91)') from None
    data = default_dataset(int(resolution))
    runs = outdir / 'runs'

    click.echo(f'\nTraining a tiny FPA on {data.name} for {kimg} kimg (CPU: a few minutes)...')
    _run('Training', [sys.executable, 'train.py', f'--outdir={runs}', '--cfg=fpa', '--fpa-preset=tiny', '--disc-size=tiny',
          '--mbstd-group=4',  # D sees batch diversity: an FPA's first kimg otherwise collapse to one image
          f'--data={data}', '--gpus=1', f'--batch={batch}', f'--kimg={kimg}', '--tick=1', f'--snap={kimg}',
          '--metrics=none', '--workers=1', '--desc=quickstart'], cwd=root)
    run = max(p for p in runs.iterdir() if p.is_dir())
    shutil.move(str(run), str(outdir / 'run'))
    shutil.rmtree(runs)
    run = outdir / 'run'
    snapshot = max(run.glob('network-snapshot-*.pkl'))
    shutil.copy(max(run.glob('fakes0*.png')), outdir / 'samples.png')

    click.echo('\nPainting...')
    _run('Painting', [sys.executable, '-m', 'fpa_plugin.tools.paint', f'--network={snapshot}', f'--seeds={seeds}',
          f'--outdir={outdir / "painting"}', '--scale=2'])
    click.echo('\nReport...')
    _run('The report', [sys.executable, '-m', 'fpa_plugin.tools.report', str(run), f'--outdir={outdir / "report"}'])

    click.echo(f'\nDone. Everything is in {outdir}:')
    for name, what in [('run/log.txt', 'training log'), ('run/stats.jsonl', 'training statistics'),
                       ('samples.png', 'samples after training'), ('painting/steps.png', 'painting steps'),
                       ('painting', 'painting animations (GIF) and key patterns'),
                       ('report/report.md', 'report')]:
        click.echo(f'  {outdir / name}  ({what})')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
