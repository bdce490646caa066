"""Small helpers the patched StyleGAN3 calls (stylegan3_patches/02-cpu.patch)."""

import sys

import psutil


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
