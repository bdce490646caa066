"""host_compat.keep_freed_memory: on glibc, freed large tensors are reused instead of page-faulting fresh pages (the
CPU training loop calls it); FPA_KEEP_FREED_MEMORY=0 leaves malloc alone. Each case runs in its own process:
mallopt settings are process-wide."""

import os
import subprocess
import sys

import pytest

PROBE = '''
import resource, torch
from fpa_plugin.stylegan3.host_compat import keep_freed_memory
applied = keep_freed_memory()
x = torch.randn(16 * 2**20)                                             # 64 MB
y = x * 2; del y
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):                                                     # 20 fresh 64 MB tensors, each freed
    y = x * 2; z = y + 1; del y, z
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
'''


def probe(keep):
    out = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, FPA_KEEP_FREED_MEMORY=keep, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr
    applied, faults = out.stdout.split()
    return applied == 'True', int(faults)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc only')
def test_freed_memory_is_reused_instead_of_page_faulting():
    kept, kept_faults = probe('1')
    default, default_faults = probe('0')
    assert kept and not default
    assert default_faults > 10 * 16384                                  # glibc's default: every tensor faults anew
    assert kept_faults < default_faults / 2, (kept_faults, default_faults)
