"""Builds and loads the C++ operators in this folder with torch.utils.cpp_extension and ninja, as StyleGAN3 builds
its own ops: compiled once per machine into the torch extensions cache (`TORCH_EXTENSIONS_DIR`, default
~/.cache/torch_extensions), loaded once per process.

The build folder is named by a digest of the source, the compiler flags and the torch version, so two checkouts
or versions never rebuild a library another process has loaded. Processes that start together (train.py
--gpus=2) share one build: cpp_extension holds a lock file in the build folder while it compiles, and the others
wait for it. A lock file left by a killed build would make them wait forever, so an old one is reported instead.
"""

import hashlib
import os
import platform
import sys
import threading
import time
from pathlib import Path

import torch

STALE_LOCK_S = 600                                                      # a build takes about a minute

#----------------------------------------------------------------------------

class ExtensionUnavailable(RuntimeError):
    """The extension cannot be built or loaded here (the message says why)."""


def cflags():
    """-O3 (no -ffast-math: the softmax relies on inf/nan arithmetic), OpenMP for at::parallel_for, and AVX2 + FMA
    where torch itself runs its AVX2 kernels (so never on a CPU without them; no -march=native, which would tie a
    shared cache folder to one CPU model)."""
    flags = ['-O3', '-fopenmp']
    x86 = platform.machine().lower() in ('x86_64', 'amd64')
    if x86 and torch.backends.cpu.get_cpu_capability() in ('AVX2', 'AVX512'):
        flags += ['-mavx2', '-mfma']
    return flags


_lock = threading.Lock()
_loaded = {}                                                            # name -> module, or the reason it failed


def load(name='neighbourhood_attention'):
    """-> the compiled module for `<name>.cpp`; raises ExtensionUnavailable (with the first attempt's reason, without
    retrying) when it cannot be built or loaded."""
    with _lock:
        if name not in _loaded:
            try:
                _loaded[name] = _build(name)
            except Exception as err:                                    # noqa: BLE001  (any failure means: fall back)
                _loaded[name] = f'{type(err).__name__}: ' + '\n'.join(str(err).strip().splitlines()[-8:])
        if isinstance(_loaded[name], str):
            raise ExtensionUnavailable(f'could not build or load the C++ extension {name!r}: {_loaded[name]}')
        return _loaded[name]


def build_dir(name):
    """-> the build folder of `<name>.cpp` for this source, these flags and this torch version (created)."""
    import torch.utils.cpp_extension as cpp                             # imports setuptools: only when building
    source = Path(__file__).with_name(f'{name}.cpp')
    digest = hashlib.sha256(source.read_bytes() + repr((cflags(), torch.__version__)).encode()).hexdigest()[:16]
    path = Path(cpp._get_build_directory(f'fpa_{name}', verbose=False)) / digest    # noqa: SLF001  (as StyleGAN3)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _build(name):
    if os.name == 'nt':
        raise ExtensionUnavailable('the build flags are for GCC/Clang (Linux, macOS)')
    import torch.utils.cpp_extension as cpp
    cpp.verify_ninja_availability()                                     # raises RuntimeError without ninja
    folder, module_name = build_dir(name), f'fpa_{name}'
    lock = folder / 'lock'                                              # cpp_extension's FileBaton
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
        raise ExtensionUnavailable(f'{lock} is over {STALE_LOCK_S // 60} minutes old: left by a killed build? '
                                   f'Delete it to build again.')
    if not (folder / f'{module_name}.so').exists():
        print(f'Building the C++ extension {module_name} in {folder} (once per machine)...', file=sys.stderr)
    return cpp.load(name=module_name, sources=[str(Path(__file__).with_name(f'{name}.cpp'))], extra_cflags=cflags(),
                    extra_ldflags=['-fopenmp'], build_directory=str(folder), verbose=False)

#----------------------------------------------------------------------------
