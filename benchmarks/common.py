"""What every benchmark needs: a timer that measures side by side in one process."""

import time

import torch


def _sync():
    if torch.cuda.is_available() and torch.cuda.is_initialized():      # CUDA kernels run asynchronously
        torch.cuda.synchronize()


def best_time(fn, repeats):
    """The fastest of `repeats` calls of fn(), after one warm-up call (seconds)."""
    fn()
    _sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return min(times)
