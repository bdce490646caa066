"""Installing and patching StyleGAN3: from a local git repository or directory, check / patch / revert,
idempotency, refusal of unknown versions with nothing changed, byte-identical revert."""

import hashlib
import subprocess
import sys

import pytest

from fpa_plugin.stylegan3 import checkout, patching


def cli(*args, env=None):
    return subprocess.run([sys.executable, '-m', 'fpa_plugin.tools.stylegan3_cli', *map(str, args)],
                          capture_output=True, text=True, env=env)


def tree_hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file() and '.git' not in p.parts}


@pytest.fixture(scope='module')
def source_repo(stylegan3):
    """A git repository holding the pinned commit: the checkout in use is a clone of one."""
    return stylegan3


@pytest.fixture
def fresh(source_repo, tmp_path):
    """A fresh install from the local git repository."""
    dest = tmp_path / 'sg3'
    checkout.install(source=str(source_repo), dest=dest, log=lambda *_: None)
    return dest


def test_install_from_local_git_repository(fresh):
    assert set(patching.check(fresh).values()) == {patching.PATCHED}
    assert checkout.locate(fresh) == fresh
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=fresh, capture_output=True, text=True).stdout.strip()
    assert head == checkout.PINNED_COMMIT


def test_revert_is_byte_identical_and_patch_idempotent(fresh):
    assert patching.apply(fresh) == []                                  # already patched: a no-op
    assert patching.revert(fresh)
    status = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=fresh,
                            capture_output=True, text=True).stdout
    assert status == ''                                                 # every file equals the pinned commit
    assert set(patching.check(fresh).values()) == {patching.PRISTINE}
    assert patching.revert(fresh) == []
    first = patching.apply(fresh)
    after_first = tree_hashes(fresh)
    assert first and patching.apply(fresh) == [] and tree_hashes(fresh) == after_first


def test_refuses_a_modified_file_and_changes_nothing(fresh):
    patching.revert(fresh)
    target = fresh / 'training' / 'training_loop.py'
    target.write_text(target.read_text() + '\n# a local change\n')
    before = tree_hashes(fresh)
    with pytest.raises(patching.PatchError, match='training/training_loop.py: unknown'):
        patching.apply(fresh)
    assert tree_hashes(fresh) == before
    proc = cli('patch', fresh)
    assert proc.returncode == 1 and 'training/training_loop.py: unknown' in proc.stderr
    assert 'Traceback' not in proc.stderr and tree_hashes(fresh) == before
    proc = cli('check', fresh)
    assert proc.returncode == 1 and 'unknown   training/training_loop.py' in proc.stdout


def test_install_from_plain_directory(fresh, tmp_path):
    patching.revert(fresh)
    plain = tmp_path / 'plain'
    subprocess.run(['cp', '-r', str(fresh), str(plain)], check=True)
    subprocess.run(['rm', '-rf', str(plain / '.git')], check=True)
    dest = tmp_path / 'from-plain'
    proc = cli('install', '--source', plain, '--dest', dest)
    assert proc.returncode == 0, proc.stderr
    assert set(patching.check(dest).values()) == {patching.PATCHED}


def test_install_refuses_other_versions(fresh, tmp_path):
    patching.revert(fresh)
    (fresh / 'train.py').write_text('# not the pinned train.py\n')
    dest = tmp_path / 'refused'
    proc = cli('install', '--source', fresh, '--dest', dest)            # a git repo: clones HEAD (pinned commit)
    assert proc.returncode == 0                                         # the clone takes the commit, not the edit
    subprocess.run(['rm', '-rf', str(fresh / '.git')], check=True)      # as a plain directory, train.py differs
    dest2 = tmp_path / 'refused2'
    proc = cli('install', '--source', fresh, '--dest', dest2)
    assert proc.returncode == 1 and 'train.py: unknown' in proc.stderr and not dest2.exists()
    assert not list(tmp_path.glob('.refused2*'))                        # no partial folder left behind


def test_install_from_repository_without_the_commit(tmp_path):
    repo = tmp_path / 'other'
    repo.mkdir()
    subprocess.run(['git', 'init', '-q', str(repo)], check=True)
    (repo / 'x').write_text('x')
    subprocess.run(['git', '-C', str(repo), '-c', 'user.name=t', '-c', 'user.email=t@t', 'add', 'x'], check=True)
    subprocess.run(['git', '-C', str(repo), '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'x'],
                   check=True)
    proc = cli('install', '--source', repo, '--dest', tmp_path / 'dest')
    assert proc.returncode == 1 and 'does not contain StyleGAN3 commit c233a91' in proc.stderr
    assert not (tmp_path / 'dest').exists()


def test_where_follows_the_environment(fresh, tmp_path):
    import os
    env = dict(os.environ, FPA_STYLEGAN3_DIR=str(fresh))
    proc = cli('where', env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == str(fresh)
    env['FPA_STYLEGAN3_DIR'] = str(tmp_path / 'nothing')
    proc = cli('where', env=env)
    assert proc.returncode == 1 and 'fpa-stylegan3 install' in proc.stderr


def test_patches_are_anchored_edits_only():
    """No patch carries a copy of upstream code: every edit's anchor is small."""
    for e in patching.load_edits():
        assert len(e.old.splitlines()) <= 2, f'{e.patch}: anchor in {e.path} is {len(e.old.splitlines())} lines'
        assert len(e.old) <= 120, f'{e.patch}: anchor in {e.path} is {len(e.old)} characters'
