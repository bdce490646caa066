"""Small helpers the patched StyleGAN3 calls (stylegan3_patches/02-cpu.patch)."""

import ctypes
import os
import sys

import psutil

KEEP_FREED_MEMORY_ENV = 'FPA_KEEP_FREED_MEMORY'                       # 0: leave glibc's malloc as it is
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4                                 # mallopt parameters (malloc.h)


def keep_freed_memory():
    """CPU training: make glibc's malloc keep freed memory for reuse. By default it returns every large freed block
    to the kernel (munmap, or a trim of the heap), so the next tensor of that size page-faults freshly zeroed
    pages: a LightGAN D step at 64x64 took ~1.7x the CPU time (`python -m benchmarks.attention --malloc=default`
    vs `--malloc=keep`). Heap-only allocation with no trimming removes the faults; the price is a somewhat higher
    peak RSS (freed blocks are kept, not returned; the benchmark prints it).
    Returns True when applied (glibc, and FPA_KEEP_FREED_MEMORY is not 0)."""
    if os.environ.get(KEEP_FREED_MEMORY_ENV, '1') == '0' or not sys.platform.startswith('linux'):
        return False
    try:
        mallopt = ctypes.CDLL('libc.so.6').mallopt                     # glibc; musl has no mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def peak_cpu_mem_gb():
    """Peak resident memory of this process so far, in GiB."""
    if sys.platform == 'win32':
        return psutil.Process().memory_info().peak_wset / 2**30
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss        # KiB on Linux, bytes on macOS
    return peak / (2**30 if sys.platform == 'darwin' else 2**20)


def ema_beta(schedule, step, default):
    """G_ema's beta at a (0-based) step under a named schedule; `default` is StyleGAN3's own."""
    if schedule == 'reference':
        from fpa_plugin.core.lightgan import reference_ema_beta
        return reference_ema_beta(step)
    raise ValueError(f'Unknown EMA schedule {schedule!r}: choose reference, or leave it unset for StyleGAN3\'s')
