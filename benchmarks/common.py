"""What every benchmark needs: a timer that measures side by side in one process."""

import time


def best_time(fn, repeats):
    """The fastest of `repeats` calls of fn(), after one warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
