"""What every benchmark measures the same way: CPU time, peak memory and the ratio row.

The scripts of this folder are run as ``python benchmarks/NAME.py``, so this module is
imported from beside them. A ratio row is what ``run_all.py`` reads from a ``BENCH`` line:
the CPU seconds of ours and of the baseline (min and median of the runs), their ratios at
the minimum and at the median, the parity check and the peak resident memory.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    """The CPU seconds of this process (``time.process_time``) spent in ``fn()``, and its
    result."""
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def peak_mb() -> float:
    """This process's peak resident memory over its whole life, in MB (Linux ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def status_mb(field: str) -> float | None:
    """A memory figure of this process (``VmRSS``, ``VmHWM``) from ``/proc/self/status``
    (Linux), in MB; None where there is no such file."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Start this process's peak resident memory (``VmHWM``) afresh (Linux >= 4.0
    ``clear_refs``), so that a peak read afterwards is that of what runs next; False where
    the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def ratio_row(
    benchmark: str,
    baseline: str,
    ours: Sequence[float],
    base: Sequence[float],
    parity: str,
    peak: float,
    **extra: Any,
) -> dict[str, Any]:
    """The row of one comparison: ``ours`` and ``base`` are the CPU seconds of each run."""
    return {
        "benchmark": benchmark,
        "baseline": baseline,
        "ours_cpu_s": [min(ours), statistics.median(ours)],
        "base_cpu_s": [min(base), statistics.median(base)],
        "ratio_min": min(base) / min(ours),
        "ratio_median": statistics.median(base) / statistics.median(ours),
        "parity": parity,
        "peak_mb": peak,
        **extra,
    }
