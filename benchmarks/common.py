"""What every benchmark needs: a timer that measures side by side in one process, and the machine's ceiling."""

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


def matmul_ceiling(repeats, device='cpu'):
    """FLOP/s of a float32 2048^3 matrix product: the most arithmetic this device does per second."""
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    return 2 * 2048 ** 3 / best_time(lambda: a @ b, repeats)
