"""Getting StyleGAN3: install a checkout at the pinned commit, find the one in use, import from it.

The checkout in use is `$FPA_STYLEGAN3_DIR` if set, else `<cache>/fpa-plugin/stylegan3` (`$XDG_CACHE_HOME` or
`~/.cache`). The source of an install is `--source`, else `$FPA_STYLEGAN3_SOURCE`, else GitHub; a URL, a local
git repository (bare or not), or a plain directory holding the files of the pinned commit.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from fpa_plugin.stylegan3 import patching

PINNED_COMMIT = 'c233a919a6faee6e36a316ddd4eddababad1adf9'
GITHUB_URL = 'https://github.com/NVlabs/stylegan3.git'
ENV_DIR = 'FPA_STYLEGAN3_DIR'
ENV_SOURCE = 'FPA_STYLEGAN3_SOURCE'
MARKER = '.fpa-plugin-install'          # in checkouts the plugin made (which it may restore and re-patch)


class CheckoutError(Exception):
    pass

#----------------------------------------------------------------------------

def default_dir():
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    cache = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache')
    return cache / 'fpa-plugin' / 'stylegan3'


def locate(path=None):
    """The StyleGAN3 checkout to use: `path`, else the default; it must exist and be patched."""
    root = Path(path).expanduser() if path else default_dir()
    if not (root / 'train.py').is_file():
        raise CheckoutError(f'No StyleGAN3 checkout at {root}. Install one with `fpa-stylegan3 install` '
                            f'(offline: `--source PATH` or ${ENV_SOURCE}), or point ${ENV_DIR} at yours.')
    state = patching.summarise(patching.check(root))
    if state != patching.PATCHED:
        raise CheckoutError(f'The StyleGAN3 checkout at {root} is {state}, not patched by this plugin: '
                            f'run `fpa-stylegan3 patch {root}` (or `fpa-stylegan3 check {root}` for details).')
    return root


def import_host(path=None):
    """Make the checkout's modules (dnnlib, torch_utils, training, metrics, legacy) importable; return its path."""
    root = str(locate(path))
    if root not in sys.path:
        sys.path.insert(0, root)
    return Path(root)

#----------------------------------------------------------------------------

def _git(*args, cwd=None):
    result = subprocess.run(['git', *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckoutError(f'git {" ".join(args)} failed: {result.stderr.strip() or result.stdout.strip()}')
    return result.stdout.strip()


def _is_git_repo(path):
    """A work tree with its .git, or a bare repository (like the mirrors `fetch` makes)."""
    if (path / '.git').exists():
        return True
    bare = subprocess.run(['git', 'rev-parse', '--is-bare-repository'], cwd=path, capture_output=True, text=True)
    return bare.returncode == 0 and bare.stdout.strip() == 'true'


def _fetch(source, tmp, log):
    """Copy the pinned commit of `source` into the new folder `tmp`."""
    local = Path(source).expanduser()
    if local.is_dir() and not _is_git_repo(local):
        log(f'Copying the directory {local}')
        shutil.copytree(local, tmp, ignore=shutil.ignore_patterns('.git', '__pycache__'))
        return
    if not local.exists() and '://' not in source and not source.startswith('git@'):
        raise CheckoutError(f'StyleGAN3 source {source!r} is neither a URL nor an existing directory')
    log(f'Cloning {source}')
    _git('clone', '--quiet', '--no-checkout', str(local) if local.exists() else source, str(tmp))
    try:
        _git('checkout', '--quiet', PINNED_COMMIT, cwd=tmp)
    except CheckoutError:
        raise CheckoutError(f'{source} does not contain StyleGAN3 commit {PINNED_COMMIT[:7]}, the only version '
                            f'this plugin supports') from None


def _restore_from_git(root, states):
    """A checkout this plugin installed (it has the marker file), from git at the pinned commit, whose target
    files are neither pristine nor patched by this version of the plugin (an older version patched them): restore
    those files from git, so that they can be patched anew. False, touching nothing, if it is not one."""
    if not (root / MARKER).is_file() or not _is_git_repo(root):
        return False
    try:
        if _git('rev-parse', 'HEAD', cwd=root) != PINNED_COMMIT:
            return False
        hashes = patching.pristine_hashes()
        originals = {}
        for path, state in states.items():
            if state in (patching.UNKNOWN, patching.MISSING):
                data = subprocess.run(['git', 'show', f'{PINNED_COMMIT}:{path}'], cwd=root, capture_output=True,
                                      check=True).stdout
                if patching.sha256(data) != hashes[path]:
                    return False
                originals[path] = data
    except (CheckoutError, subprocess.CalledProcessError):
        return False
    for path, data in originals.items():
        patching.write_atomic(os.path.join(root, path), data)
    return sorted(originals)


def install(source=None, dest=None, log=print):
    """Install StyleGAN3 at the pinned commit into `dest` (default: `default_dir()`) and patch it. A checkout
    already there is kept (and patched if it is pristine); anything else there is refused, untouched."""
    dest = Path(dest).expanduser() if dest else default_dir()
    if dest.exists():
        states = patching.check(dest) if (dest / 'train.py').is_file() else {}
        restored = patching.summarise(states) == patching.UNKNOWN and _restore_from_git(dest, states)
        if restored:
            log(f'Restored from git what an earlier version of the plugin patched: {", ".join(restored)}')
            states = patching.check(dest)
        if not states or patching.summarise(states) == patching.UNKNOWN:
            raise CheckoutError(f'{dest} exists and is not a StyleGAN3 checkout at {PINNED_COMMIT[:7]}: '
                                f'remove it or choose another --dest')
        written = patching.apply(dest)
        log(f'StyleGAN3 is already installed at {dest}' + (' (patched now)' if written else ''))
        return dest
    source = source or os.environ.get(ENV_SOURCE) or GITHUB_URL
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f'.{dest.name}.partial-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _fetch(source, tmp, log)
        states = patching.check(tmp)
        if patching.summarise(states) != patching.PRISTINE:
            bad = '\n'.join(f'  {p}: {s}' for p, s in sorted(states.items()) if s != patching.PRISTINE)
            raise CheckoutError(f'{source} is not StyleGAN3 at {PINNED_COMMIT[:7]}; these files differ:\n{bad}')
        patching.apply(tmp)
        (tmp / MARKER).write_text(f'Installed by fpa-plugin from {source}\n')
        os.replace(tmp, dest)                                           # the checkout appears whole, or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f'Installed and patched StyleGAN3 {PINNED_COMMIT[:7]} at {dest}')
    return dest

#----------------------------------------------------------------------------
