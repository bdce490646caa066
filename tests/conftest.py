"""Shared fixtures: the StyleGAN3 checkout (host tests skip loudly without one; with FPA_REQUIRE_STYLEGAN3=1, as
in CI, they fail instead), tiny datasets made with StyleGAN3's own dataset_tool.py, a stand-in FID detector,
and a runner for the host's scripts."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

REQUIRE_ENV = 'FPA_REQUIRE_STYLEGAN3'

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def one_thread():
    """Small convolutions run far slower with 2 intra-op threads on a shared, busy 2-core machine (OpenMP barriers
    wait on descheduled threads). One thread, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(module):
    return sum(p.numel() for p in module.parameters())

#----------------------------------------------------------------------------

def _checkout_or_reason():
    from fpa_plugin.stylegan3 import checkout
    try:
        return checkout.locate(), None
    except Exception as err:                                            # noqa: BLE001  (the reason is the message)
        return None, str(err)


@pytest.fixture(scope='session')
def stylegan3():
    """Path of the patched StyleGAN3 checkout in use."""
    root, reason = _checkout_or_reason()
    if root is None:
        message = f'HOST TESTS NOT RUN: no usable StyleGAN3 checkout. {reason}'
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(message)
        pytest.skip(message)
    return root


def run_host(stylegan3, script, *args, env=None, check=True, timeout=900):
    """Run one of StyleGAN3's scripts in the checkout with this interpreter; return the CompletedProcess."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    proc = subprocess.run([sys.executable, script, *map(str, args)], cwd=stylegan3, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{script} {" ".join(map(str, args))} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc

#----------------------------------------------------------------------------

def make_images(folder, count, resolution, seed=0, labels=None):
    """Coloured rectangles on coloured backgrounds; with `labels`, a dataset.json of class labels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    r = resolution
    for i in range(count):
        img = np.zeros((r, r, 3), np.uint8)
        img[:] = rng.integers(0, 255, 3)
        x0 = int(rng.integers(0, r // 2))
        img[r // 4:3 * r // 4, x0:x0 + r // 2] = rng.integers(0, 255, 3)
        PIL.Image.fromarray(img).save(folder / f'img{i:04d}.png')
    if labels:
        meta = {'labels': [[f'img{i:04d}.png', i % labels] for i in range(count)]}
        (folder / 'dataset.json').write_text(json.dumps(meta))


@pytest.fixture(scope='session')
def make_dataset(stylegan3, tmp_path_factory):
    """make_dataset(resolution, count=32, labels=0) -> path of a StyleGAN3 zip dataset (made once per kind)."""
    made = {}

    def make(resolution, count=32, labels=0):
        key = (resolution, count, labels)
        if key not in made:
            folder = tmp_path_factory.mktemp(f'images{resolution}')
            make_images(folder, count, resolution, labels=labels)
            dest = folder.parent / f'{folder.name}.zip'
            run_host(stylegan3, 'dataset_tool.py', f'--source={folder}', f'--dest={dest}')
            made[key] = dest
        return made[key]
    return make


@pytest.fixture(scope='session')
def standin_detector(tmp_path_factory):
    """A dnnlib cache folder holding a small, fast stand-in for NVIDIA's FID network; pass it as DNNLIB_CACHE_DIR."""
    from fpa_plugin.stylegan3 import fid_net

    class Tiny(torch.nn.Module):                                        # 64 features: FID's sqrtm stays cheap
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3 * 8 * 8, 64)

        def forward(self, x):
            return self.lin(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1))

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Tiny()), buf)
    cache = tmp_path_factory.mktemp('dnnlib-cache')
    fid_net.install(cache, detector=fid_net.OfflineInception(buf.getvalue(), size=None))
    return cache

#----------------------------------------------------------------------------

def run_dirs(outdir):
    return sorted(p for p in Path(outdir).iterdir() if p.is_dir())


# A small, fast training run: the tiny FPA preset and the tiny LightGAN D, 1 kimg of 16x16 images.
TINY = ['--fpa-preset=tiny', '--disc-size=tiny', '--batch=16', '--kimg=1', '--tick=1', '--snap=1', '--workers=1']


def train(stylegan3, outdir, data, *args, env=None, check=True):
    return run_host(stylegan3, 'train.py', f'--outdir={outdir}', f'--data={data}', '--gpus=1', *args, env=env,
                    check=check)


@pytest.fixture(scope='session')
def fpa_run(stylegan3, make_dataset, standin_detector, tmp_path_factory):
    """A finished --cfg=fpa run (2 snapshots, fid5k_full with the stand-in detector at each)."""
    outdir = tmp_path_factory.mktemp('fpa-runs')
    train(stylegan3, outdir, make_dataset(16), '--cfg=fpa', *TINY, '--metrics=fid5k_full',
          env={'DNNLIB_CACHE_DIR': str(standin_detector)})
    (run,) = run_dirs(outdir)
    return run
