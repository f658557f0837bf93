"""Wall-clock timing for the benchmarks."""

import time


def timed(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)``; return (seconds it took, its result)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result
