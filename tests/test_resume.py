"""Fault-tolerant training: atomic writes, trimming a run back to its last complete snapshot, falling back past
corrupt files, exact resume (bit-identical weights), and kill -9 at random moments (also during a snapshot
write), each time continued with --resume=auto until the run finishes with continuous, duplicate-free logs."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import TINY, run_dirs, run_host, train
from fpa_plugin.stylegan3 import resume

#----------------------------------------------------------------------------
# Units.

def test_atomic_write_failure_leaves_the_old_file(tmp_path):
    path = tmp_path / 'network-snapshot-000001.pkl'
    path.write_bytes(b'the last good snapshot')

    def full_disk(f):
        f.write(b'half a pick')
        raise OSError(errno.ENOSPC, 'No space left on device')
    with pytest.raises(OSError, match='No space left on device.*intact'):
        resume.write_atomic(str(path), full_disk)
    assert path.read_bytes() == b'the last good snapshot'
    assert os.listdir(tmp_path) == ['network-snapshot-000001.pkl']    # no temporary file left behind
    with pytest.raises(SystemExit, match='No space left on device'):
        resume.write_pickle(str(tmp_path / 'x.pkl'), _Unpicklable())


class _Unpicklable:
    def __reduce__(self):
        raise OSError(errno.ENOSPC, 'No space left on device')


def _fake_run(root, kimgs, num_gpus=1):
    run = root / '00000-fake'
    run.mkdir(parents=True)
    (run / 'training_options.json').write_text('{}')
    stats = [json.dumps({'Progress/kimg': {'num': 1, 'mean': k + 0.008}}) for k in kimgs]
    (run / 'stats.jsonl').write_text('\n'.join(stats) + '\n{"Progress/k')                  # cut mid-line
    lines = [json.dumps({'results': {'fid': 100 - k}, 'snapshot_pkl': f'network-snapshot-{k:06d}.pkl'}) for k in kimgs]
    (run / 'metric-fid5k_full.jsonl').write_text('\n'.join(lines) + '\n')
    for k in kimgs:
        pkl = run / f'network-snapshot-{k:06d}.pkl'
        pkl.write_bytes(f'pickle {k}'.encode())
        state = dict(snapshot_pkl=pkl.name, snapshot_sha256=resume.sha256_file(pkl), num_gpus=num_gpus,
                     cur_nimg=k * 1000 + 8)
        torch.save(state, run / f'training-state-{k:06d}.pt')
    (run / 'network-snapshot-000009.pkl.tmp-123').write_bytes(b'half')
    return run


def test_trim_after_removes_what_follows_the_snapshot(tmp_path):
    run = _fake_run(tmp_path, [0, 1, 2, 3])
    resume.trim_after(str(run), 2008)
    kimgs = [json.loads(l)['Progress/kimg']['mean'] for l in (run / 'stats.jsonl').read_text().splitlines()]
    assert kimgs == [0.008, 1.008, 2.008]
    metrics = [json.loads(l)['snapshot_pkl'] for l in (run / 'metric-fid5k_full.jsonl').read_text().splitlines()]
    assert metrics == [f'network-snapshot-00000{k}.pkl' for k in range(3)]
    assert sorted(p.name for p in run.glob('network-snapshot-*')) == [f'network-snapshot-00000{k}.pkl' for k in range(3)]
    assert not list(run.glob('*.tmp-*')) and not (run / 'training-state-000003.pt').exists()


def test_corrupt_files_fall_back_to_the_previous_complete_snapshot(tmp_path):
    run = _fake_run(tmp_path, [0, 1, 2])
    (run / 'network-snapshot-000002.pkl').write_bytes(b'flipped bits')        # corrupt newest pickle
    (run / 'training-state-000001.pt').write_bytes(b'\x80truncated')         # unreadable state
    messages = []
    run_dir, path, state = resume.find_resume_point(str(tmp_path), log=messages.append)
    assert path.endswith('training-state-000000.pt') and state['cur_nimg'] == 8
    assert any('network-snapshot-000002.pkl is corrupt' in m for m in messages)
    assert any('training-state-000001.pt' in m and 'falling back' in m for m in messages)


def test_incompatible_options_are_refused():
    old = dict(G_kwargs={'class_name': 'a', 'steps': 16}, training_set_kwargs={'resolution': 16})
    with pytest.raises(resume.ResumeError, match='G_kwargs'):
        resume.check_compatible(old, dict(old, G_kwargs={'class_name': 'a', 'steps': 8}), 'run')
    with pytest.raises(resume.ResumeError, match='trained at 16x16, the data is 32x32'):
        resume.check_compatible(old, dict(old, training_set_kwargs={'resolution': 32}), 'run')

#----------------------------------------------------------------------------
# End to end in StyleGAN3.

ARGS = ['--cfg=fpa', *TINY]


def params(stylegan3, pkl):
    sys.path.insert(0, str(stylegan3))
    import legacy
    with open(pkl, 'rb') as f:
        data = legacy.load_network_pkl(f)
    return {f'{k}.{n}': p for k in ['G', 'D', 'G_ema'] for n, p in data[k].named_parameters()}


def stats_kimgs(run):
    return [json.loads(l)['Progress/kimg']['mean'] for l in (run / 'stats.jsonl').read_text().splitlines()]


def test_resume_is_exact(stylegan3, make_dataset, tmp_path):
    data = make_dataset(16)
    train(stylegan3, tmp_path / 'straight', data, *ARGS, '--kimg=2', '--metrics=none')
    train(stylegan3, tmp_path / 'stopped', data, *ARGS, '--kimg=1', '--metrics=none')
    proc = train(stylegan3, tmp_path / 'stopped', data, *ARGS, '--kimg=2', '--metrics=none', '--resume=auto')
    assert '--resume=auto: continuing' in proc.stdout
    (a,), (b,) = run_dirs(tmp_path / 'straight'), run_dirs(tmp_path / 'stopped')   # the same run directory
    pa, pb = params(stylegan3, a / 'network-snapshot-000002.pkl'), params(stylegan3, b / 'network-snapshot-000002.pkl')
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.equal(pa[name], pb[name]), f'{name} differs after resuming'   # bit-identical on CPU
    assert stats_kimgs(b) == pytest.approx([0.016, 1.008, 2.0])          # ticks of both parts, once each
    assert json.loads((b / 'training_options.json').read_text())['total_kimg'] == 2   # extended: the record says so
    before = {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()}
    proc = train(stylegan3, tmp_path / 'stopped', data, *ARGS, '--kimg=2', '--metrics=none', '--resume=auto')
    assert 'already trained to 2 kimg' in proc.stdout                    # a finished run is left as it is
    assert {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()} == before
    assert (b / 'fakes_resume.png').is_file() and (b / 'fakes_init.png').is_file()


def test_resume_auto_refuses_other_options(stylegan3, make_dataset, tmp_path):
    data = make_dataset(16)
    train(stylegan3, tmp_path, data, *ARGS, '--metrics=none')
    proc = train(stylegan3, tmp_path, data, *ARGS, '--fpa-steps=4', '--kimg=2', '--metrics=none', '--resume=auto',
                 check=False)
    output = proc.stdout + proc.stderr                                  # train.py's logger sends stderr to stdout
    assert proc.returncode != 0 and 'was trained with G_kwargs' in output and 'Traceback' not in output
    assert len(run_dirs(tmp_path)) == 1


def _kill_when(proc, run_parent, condition, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        if condition(run_parent):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    return False


def test_kill_9_at_random_moments(stylegan3, make_dataset, standin_detector, tmp_path):
    data, out = make_dataset(16), tmp_path / 'runs'
    rng = random.Random(1)
    env = dict(os.environ, DNNLIB_CACHE_DIR=str(standin_detector), PYTHONUNBUFFERED='1',
               **{resume.SLOW_WRITES_ENV: '0.5'})
    cmd = [sys.executable, 'train.py', f'--outdir={out}', f'--data={data}', '--gpus=1', *ARGS, '--kimg=3',
           '--metrics=fid5k_full', '--resume=auto']
    # Kill during a write once a complete snapshot exists (before it, --resume=auto would start a new run).
    writing = lambda root: any(root.glob('*/*.tmp-*')) and any(root.glob('*/training-state-*.pt'))
    kills = []
    for attempt in range(6):
        proc = subprocess.Popen(cmd, cwd=stylegan3, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        if attempt % 2 == 0:                                            # during a snapshot or state write
            killed = _kill_when(proc, out, lambda root: root.exists() and writing(root), timeout=600)
        else:                                                           # at a random moment
            delay = rng.uniform(2, 15)
            killed = _kill_when(proc, out, lambda root, t=time.time() + delay: time.time() > t, timeout=600)
        if not killed:
            assert proc.wait() == 0, proc.stderr.read().decode()[-3000:]
            break
        kills.append('write' if attempt % 2 == 0 else 'random')
    else:
        assert subprocess.run(cmd, cwd=stylegan3, env=env, capture_output=True).returncode == 0
    assert 'write' in kills and 'random' in kills, kills
    (run,) = run_dirs(out)
    kimgs = stats_kimgs(run)
    assert kimgs == sorted(set(kimgs)) and kimgs[-1] >= 3                # continuous, no duplicates, finished
    assert len(kimgs) == 4                                              # ticks at 0, 1, 2, 3 kimg: none lost
    snaps = [json.loads(l)['snapshot_pkl'] for l in (run / 'metric-fid5k_full.jsonl').read_text().splitlines()]
    assert snaps == sorted(set(snaps)) and len(snaps) == 4
    assert not list(run.glob('*.tmp-*'))
    params(stylegan3, run / 'network-snapshot-000003.pkl')              # the final snapshot loads
