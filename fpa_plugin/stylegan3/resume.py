"""Fault-tolerant training for every configuration (stylegan3_patches/04-resume.patch).

A snapshot is complete when its run state `training-state-<kimg>.pt` exists: written last, atomically, after
the network pickle (atomic too), its metrics and its line in stats.jsonl. The state holds what StyleGAN3's own
`--resume` drops: the image counter, tick and step, every optimiser's moments, the loss's state (e.g. the
path-length mean), the augmentation probability and the ADA statistics gathered since the last adjustment,
and every random generator (torch, NumPy, Python, and the data sampler's position), one set per process.

`train.py --resume=auto` continues the newest complete state in --outdir, in the same run directory, with the
same counters, and trims whatever was written after that state (log lines, metric lines, later pickles), so
logs stay continuous and free of duplicates. A corrupt or missing file makes it fall back to the previous
complete state, saying so. Without any, the run starts afresh.
"""

import glob
import hashlib
import json
import os
import pickle
import random
import re
import tempfile
import time

import numpy as np
import torch

SLOW_WRITES_ENV = 'FPA_TEST_SLOW_WRITES'  # seconds to pause inside every atomic write (kill-during-write tests)
STATE = 'training-state-{kimg:06d}.pt'
RANK_STATE = 'training-state-{kimg:06d}.rank{rank}.pt'
_STATE_RE = re.compile(r'training-state-(\d{6})\.pt$')
# Options that must match between the run being continued and the command continuing it.
_MUST_MATCH = ['G_kwargs', 'D_kwargs', 'loss_kwargs', 'G_opt_kwargs', 'D_opt_kwargs', 'augment_kwargs', 'num_gpus',
               'batch_size', 'batch_gpu', 'G_reg_interval', 'D_reg_interval', 'ema_kimg', 'random_seed']


class ResumeError(Exception):
    pass

#----------------------------------------------------------------------------
# Writing files so that a crash never leaves a half-written file under the final name.

def write_atomic(path, write_fn):
    """write_fn(file) into a temporary file beside `path`, flush, fsync, rename. On failure (a full disk) the
    temporary file is removed, `path` is untouched, and the error says so."""
    tmp = f'{path}.tmp-{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            write_fn(f)
            f.flush()
            if os.environ.get(SLOW_WRITES_ENV):                         # tests: widen the window to kill a write
                time.sleep(float(os.environ[SLOW_WRITES_ENV]))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError):
            raise OSError(err.errno, f'Could not write {path} ({err.strerror}); the files written before it, '
                                     f'and the last complete snapshot, are intact') from err
        raise
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)                                                # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def write_pickle(path, data):
    """A network snapshot, atomically. A full disk stops training cleanly, the last complete snapshot intact."""
    try:
        write_atomic(path, lambda f: pickle.dump(data, f))
    except OSError as err:
        raise SystemExit(f'Error: {err.strerror}. Training stopped; continue later with --resume=auto.') from None


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()

#----------------------------------------------------------------------------
# The state of one process.

def _rng_state(device):
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if device.type == 'cuda':
        state['cuda'] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state, device):
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and device.type == 'cuda':
        torch.cuda.set_rng_state(state['cuda'], device)


def _loss_state(loss):
    return {k: v.detach().cpu().clone() for k, v in vars(loss).items() if torch.is_tensor(v)}


def save_state(run_dir, rank, num_gpus, device, snapshot_pkl, cur_nimg, cur_tick, batch_idx, phases, loss,
               augment_pipe, ada_stats):
    """Called by every process after a snapshot's pickle, metrics and log line are written. Writes this
    process's random state, then (rank 0, after all have) the run state that makes the snapshot complete."""
    kimg = cur_nimg // 1000
    ada_pending = None
    if ada_stats is not None:                                           # ADA signs gathered since the last update
        from torch_utils import training_stats
        name = 'Loss/signs/real'
        cumulative = dict(training_stats._sync([name])).get(name)
        if cumulative is not None:
            ada_pending = cumulative - ada_stats._cumulative.get(name, torch.zeros_like(cumulative))
    if num_gpus > 1:
        write_atomic(os.path.join(run_dir, RANK_STATE.format(kimg=kimg, rank=rank)),
                     lambda f: torch.save(_rng_state(device), f))
    if num_gpus > 1:
        torch.distributed.barrier()
    if rank != 0:
        return
    opts = {}
    for phase in phases:                                                # Gmain/Greg share one optimiser
        opts.setdefault(id(phase.opt), (phase.name, phase.opt.state_dict()))
    state = dict(
        version=1, cur_nimg=cur_nimg, cur_tick=cur_tick, batch_idx=batch_idx, num_gpus=num_gpus,
        snapshot_pkl=os.path.basename(snapshot_pkl), snapshot_sha256=sha256_file(snapshot_pkl),
        optimizers=dict(opts.values()), loss=_loss_state(loss),
        augment_pipe=None if augment_pipe is None else {k: v.cpu() for k, v in augment_pipe.state_dict().items()},
        ada_pending=ada_pending, rng=_rng_state(device) if num_gpus == 1 else None)
    try:
        write_atomic(os.path.join(run_dir, STATE.format(kimg=kimg)), lambda f: torch.save(state, f))
    except OSError as err:
        raise SystemExit(f'Error: {err.strerror}. Training stopped; continue later with --resume=auto.') from None


def load_state(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def restore(state, run_dir, rank, num_gpus, device, phases, loss, augment_pipe):
    """Called by every process before training resumes: optimisers, loss, augmentation, ADA statistics, random
    state. Returns (cur_nimg, cur_tick, batch_idx) to continue from."""
    seen = {}
    for phase in phases:
        if id(phase.opt) not in seen:
            seen[id(phase.opt)] = True
            phase.opt.load_state_dict(state['optimizers'][phase.name])
    for k, v in state['loss'].items():
        getattr(loss, k).copy_(v)
    if augment_pipe is not None and state['augment_pipe'] is not None:
        augment_pipe.load_state_dict(state['augment_pipe'])
    rank_file = os.path.join(run_dir, RANK_STATE.format(kimg=state['cur_nimg'] // 1000, rank=rank))
    rng = state['rng'] if num_gpus == 1 else load_state(rank_file)
    _set_rng_state(rng, device)
    if rank == 0 and state['ada_pending'] is not None:                 # give ADA back what it had gathered
        from torch_utils import training_stats
        pending = state['ada_pending'].to(device)
        training_stats._counters.setdefault('Loss/signs/real', {}).setdefault(device, torch.zeros_like(pending))
        training_stats._counters['Loss/signs/real'][device].add_(pending)
    return state['cur_nimg'], state['cur_tick'] + 1, state['batch_idx']


def continue_sampler(sampler, state, batch_per_process):
    """The data sampler, positioned after the images already trained on."""
    return sampler if state is None else SkipSampler(sampler, state['batch_idx'] * batch_per_process)


class SkipSampler(torch.utils.data.Sampler):
    """The data sampler, continued: drops the first `skip` indices it would yield (those already trained on)."""
    def __init__(self, sampler, skip):
        super().__init__()
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        it = iter(self.sampler)
        for _ in range(self.skip):
            next(it)
        return it

#----------------------------------------------------------------------------
# --resume=auto: find the newest complete state and make the run directory consistent with it.

def _complete_states(run_dir, log):
    """[(kimg, state path, state)] of the complete snapshots in a run, newest first. Broken ones are named."""
    found = []
    for path in sorted(glob.glob(os.path.join(run_dir, 'training-state-*.pt')), reverse=True):
        m = _STATE_RE.search(os.path.basename(path))
        if not m:
            continue
        try:
            state = load_state(path)
            pkl = os.path.join(run_dir, state['snapshot_pkl'])
            if not os.path.isfile(pkl):
                raise ResumeError(f'its network pickle {pkl} is missing')
            if sha256_file(pkl) != state['snapshot_sha256']:
                raise ResumeError(f'its network pickle {pkl} is corrupt (checksum mismatch)')
            for rank in range(state['num_gpus'] if state['num_gpus'] > 1 else 0):
                rank_file = os.path.join(run_dir, RANK_STATE.format(kimg=int(m.group(1)), rank=rank))
                if not os.path.isfile(rank_file):
                    raise ResumeError(f'{rank_file} is missing')
        except Exception as err:                                        # noqa: BLE001 (any unreadable state)
            log(f'Skipping {path}: {err}; falling back to the previous complete snapshot')
            continue
        found.append((int(m.group(1)), path, state))
    return found


def find_resume_point(outdir, log=print):
    """(run_dir, state path, state) of the newest complete snapshot in the newest run under outdir that has one."""
    if not os.path.isdir(outdir):
        return None
    runs = sorted((d for d in os.listdir(outdir) if re.match(r'^\d+-', d)
                   and os.path.isfile(os.path.join(outdir, d, 'training_options.json'))), reverse=True)
    for run in runs:
        run_dir = os.path.join(outdir, run)
        states = _complete_states(run_dir, log)
        if states:
            _, path, state = states[0]
            return run_dir, path, state
    return None


def check_compatible(old, new, run_dir):
    """The run being continued and the command continuing it must describe the same training."""
    for key in _MUST_MATCH:
        a, b = json.dumps(old.get(key), sort_keys=True), json.dumps(new.get(key), sort_keys=True)
        if a != b:
            raise ResumeError(f'--resume=auto: {run_dir} was trained with {key} = {a}, this command asks for {b}. '
                              f'Use the original options, or a new --outdir to start another run.')
    old_res, new_res = old['training_set_kwargs'].get('resolution'), new['training_set_kwargs'].get('resolution')
    if old_res != new_res:
        raise ResumeError(f'--resume=auto: {run_dir} trained at {old_res}x{old_res}, the data is {new_res}x{new_res}')


def trim_after(run_dir, cur_nimg):
    """Remove what a run wrote after its snapshot at `kimg` (it will be written again): later stats lines,
    metric lines of later snapshots, later pickles and states, leftover temporary files."""
    def keep_lines(path, keep):
        if not os.path.isfile(path):
            return
        with open(path, 'rt') as f:
            lines = f.read().splitlines()
        kept = []
        for line in lines:
            try:
                if keep(json.loads(line)):
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                pass                                                    # a line cut by the crash
        data = ''.join(line + '\n' for line in kept).encode()
        write_atomic(path, lambda f: f.write(data))

    kimg = cur_nimg // 1000
    snap_kimg = lambda name: int(re.search(r'(\d+)\.pkl$', name).group(1))
    keep_lines(os.path.join(run_dir, 'stats.jsonl'), lambda d: d['Progress/kimg']['mean'] * 1000 <= cur_nimg + 1e-3)
    for path in glob.glob(os.path.join(run_dir, 'metric-*.jsonl')):
        keep_lines(path, lambda d: snap_kimg(d['snapshot_pkl']) <= kimg)
    for path in glob.glob(os.path.join(run_dir, 'network-snapshot-*.pkl')) + \
            glob.glob(os.path.join(run_dir, 'training-state-*.pt')):
        m = re.search(r'-(\d{6})(\.rank\d+)?\.(pkl|pt)$', path)
        if m and int(m.group(1)) > kimg:
            os.remove(path)
    for path in glob.glob(os.path.join(run_dir, '*.tmp-*')):
        os.remove(path)


def launch_auto(c, desc, outdir, dry_run, launch_training, subprocess_fn, log=print):
    """train.py's launch_training for --resume=auto."""
    point = find_resume_point(outdir, log)
    if point is None:
        log(f'--resume=auto: no complete snapshot under {outdir}; starting a new run')
        return launch_training(c=c, desc=desc, outdir=outdir, dry_run=dry_run)
    run_dir, state_path, state = point
    with open(os.path.join(run_dir, 'training_options.json'), 'rt') as f:
        old = json.load(f)
    new = dict(c)
    try:
        check_compatible(old, new, run_dir)
    except ResumeError as err:
        import click
        raise click.ClickException(str(err)) from None
    c.clear()
    c.update(old)
    c.total_kimg = new['total_kimg']                                    # continuing may extend the run
    c.metrics = new['metrics']
    c.run_dir = run_dir
    c.resume_state = state_path
    if state['cur_nimg'] >= c.total_kimg * 1000:                        # StyleGAN3's loop would train one more tick
        log(f'--resume=auto: {run_dir} is already trained to {state["cur_nimg"] / 1000:g} kimg (--kimg={c.total_kimg}); '
            f'nothing to do. A larger --kimg continues it.')
        return None
    log(f'--resume=auto: continuing {run_dir} from {state["snapshot_pkl"]} (kimg {state["cur_nimg"] / 1000:.1f})')
    if dry_run:
        log('Dry run; exiting.')
        return None
    c.resume_pkl = os.path.join(run_dir, state['snapshot_pkl'])
    trim_after(run_dir, state['cur_nimg'])
    if c.total_kimg != old['total_kimg']:                               # the run's record says how long it now runs
        write_atomic(os.path.join(run_dir, 'training_options.json'),
                     lambda f: f.write(json.dumps(dict(old, total_kimg=c.total_kimg), indent=2).encode()))
        log(f'--resume=auto: total_kimg {old["total_kimg"]} -> {c.total_kimg} (training_options.json)')
    torch.multiprocessing.set_start_method('spawn', force=True)
    with tempfile.TemporaryDirectory() as temp_dir:
        if c.num_gpus == 1:
            subprocess_fn(rank=0, c=c, temp_dir=temp_dir)
        else:
            torch.multiprocessing.spawn(fn=subprocess_fn, args=(c, temp_dir), nprocs=c.num_gpus)
    return None

#----------------------------------------------------------------------------
