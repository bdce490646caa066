"""Anchored edits to a StyleGAN3 checkout: verified, atomic, idempotent, exactly reversible.

The patches live in `stylegan3_patches/NN-concern.patch`, one concern each, applied in name order. A patch is a
list of edits; each edit names a file and replaces an anchor (the smallest upstream text that places the change,
which must occur exactly once) by new text:

    @@ training/training_loop.py
    <<<
        device = torch.device('cuda', rank)
    ===
        device = torch.device('cuda', rank) if torch.cuda.is_available() else torch.device('cpu')
    >>>

Lines outside edits are comments. `pristine.sha256` holds the SHA-256 of every target file at the pinned commit:
nothing is touched unless every target is pristine or already patched by exactly these edits. A patched file
is recognised by undoing the edits (each new text must occur exactly once), hashing the result, and redoing
them; revert writes that pristine text back, byte for byte.
"""

import hashlib
import os
import re
from dataclasses import dataclass
from importlib import resources

PRISTINE, PATCHED, UNKNOWN, MISSING = 'pristine', 'patched', 'unknown', 'missing'

#----------------------------------------------------------------------------

@dataclass(frozen=True)
class Edit:
    patch: str      # patch file name (the concern)
    path: str       # file, relative to the checkout
    old: str        # anchor: upstream text, exactly once in the file before this edit
    new: str        # replacement, exactly once in the file after every edit


class PatchError(Exception):
    pass


def parse_patch(name, text):
    edits, path, block, mode = [], None, None, None
    for lineno, line in enumerate(text.splitlines(), start=1):
        where = f'{name}:{lineno}'
        if mode is None:
            if line.startswith('@@ '):
                path = line[3:].strip()
            elif line.rstrip() == '<<<':
                if path is None:
                    raise PatchError(f'{where}: an edit before any "@@ file" line')
                block, mode = {'old': [], 'new': []}, 'old'
        elif line.rstrip() == '===' and mode == 'old':
            mode = 'new'
        elif line.rstrip() == '>>>' and mode == 'new':
            edits.append(Edit(name, path, '\n'.join(block['old']), '\n'.join(block['new'])))
            mode = None
        else:
            block[mode].append(line)
    if mode is not None:
        raise PatchError(f'{name}: unterminated edit at the end of the file')
    return edits


def _folder():
    return resources.files('fpa_plugin.stylegan3_patches')


def load_edits():
    """Every edit of every patch, in application order."""
    names = sorted(p.name for p in _folder().iterdir() if re.fullmatch(r'\d\d-[\w-]+\.patch', p.name))
    return [e for n in names for e in parse_patch(n, (_folder() / n).read_text())]


def pristine_hashes():
    """{path: sha256} of the files the patches touch, at the pinned commit."""
    out = {}
    for line in (_folder() / 'pristine.sha256').read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            digest, path = line.split(maxsplit=1)
            out[path.strip()] = digest
    return out


def sha256(data):
    return hashlib.sha256(data).hexdigest()

#----------------------------------------------------------------------------

def _replace_once(text, old, new, what):
    count = text.count(old)
    if count != 1:
        raise PatchError(f'{what}: expected exactly one occurrence, found {count}')
    return text.replace(old, new)


def _patch_text(text, edits):
    for e in edits:
        text = _replace_once(text, e.old, e.new, f'{e.patch}: anchor in {e.path}')
    return text


def _unpatch_text(text, edits):
    for e in reversed(edits):
        text = _replace_once(text, e.new, e.old, f'{e.patch}: patched text in {e.path}')
    return text


def _read(root, path):
    with open(os.path.join(root, path), 'rb') as f:
        return f.read()


def _edits_by_file(edits=None):
    by_file = {}
    for e in edits if edits is not None else load_edits():
        by_file.setdefault(e.path, []).append(e)
    return by_file


def file_states(root):
    """{path: (state, pristine text or None)} for every target file."""
    hashes, states = pristine_hashes(), {}
    for path, edits in _edits_by_file().items():
        if path not in hashes:
            raise PatchError(f'{path} is patched but has no pristine hash in pristine.sha256')
        try:
            data = _read(root, path)
        except FileNotFoundError:
            states[path] = (MISSING, None)
            continue
        if sha256(data) == hashes[path]:
            states[path] = (PRISTINE, data)
            continue
        try:
            text = data.decode('utf-8')
            original = _unpatch_text(text, edits).encode('utf-8')
            ok = sha256(original) == hashes[path] and _patch_text(original.decode('utf-8'), edits) == text
        except (PatchError, UnicodeDecodeError):
            ok = False
        states[path] = (PATCHED, original) if ok else (UNKNOWN, None)
    return states


def check(root):
    """{path: 'pristine' | 'patched' | 'unknown' | 'missing'}."""
    return {path: state for path, (state, _) in file_states(root).items()}


def summarise(states):
    """One word for the whole checkout: pristine, patched, mixed (some of each: `apply` completes it), unknown."""
    values = set(states.values())
    if not values <= {PRISTINE, PATCHED}:
        return UNKNOWN
    return values.pop() if len(values) == 1 else 'mixed'


def _refuse(root, states, action):
    bad = {p: s for p, s in states.items() if s[0] in (UNKNOWN, MISSING)}
    if bad:
        lines = '\n'.join(f'  {p}: {s[0]}' for p, s in sorted(bad.items()))
        raise PatchError(f'Cannot {action} {root}: these files are not StyleGAN3 at the pinned commit '
                         f'(nor patched by this plugin); nothing was changed:\n{lines}')


def write_atomic(path, data):
    tmp = f'{path}.fpa-tmp'
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if os.path.exists(path):
        os.chmod(tmp, os.stat(path).st_mode)
    os.replace(tmp, path)


def apply(root):
    """Patch every target file; files already patched are left alone. Returns the paths written."""
    states = file_states(root)
    _refuse(root, states, 'patch')
    by_file = _edits_by_file()
    todo = {p: _patch_text(text.decode('utf-8'), by_file[p]).encode('utf-8')
            for p, (state, text) in states.items() if state == PRISTINE}  # all computed before anything is written
    for path, data in todo.items():
        write_atomic(os.path.join(root, path), data)
    return sorted(todo)


def revert(root):
    """Restore every patched file to its pristine bytes. Returns the paths written."""
    states = file_states(root)
    _refuse(root, states, 'revert')
    todo = {p: text for p, (state, text) in states.items() if state == PATCHED}
    for path, data in todo.items():
        write_atomic(os.path.join(root, path), data)
    return sorted(todo)

#----------------------------------------------------------------------------
