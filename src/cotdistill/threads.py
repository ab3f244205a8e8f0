"""CPU threads: how many a process uses, and a warning when the machine is already busy.

On a busy 2-core machine one evaluation generated 21–25 tokens/s with torch's default threads and 1,760 tokens/s
with one thread: threads that outnumber the free cores wait on each other at every operation.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("cotdistill")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def max_threads() -> int:
    """The most threads a process may ask for: four per core it may use (``threads=100000`` crashed torch)."""
    return 4 * available_cores()


def check_threads(threads: int | None) -> None:
    """``threads`` is null (the default) or in [1, :func:`max_threads`]: the one rule for the key and --threads."""
    from cotdistill.config import ConfigError

    if threads is not None and not 1 <= threads <= max_threads():
        raise ConfigError(f"threads must be >= 1 and at most {max_threads()} (4 per core this process may use), "
                          f"or null; got {threads}")


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: ``threads`` if given, else ``OMP_NUM_THREADS`` if set, else the cores this
    process may use. Warns when the machine's load already fills those cores. Returns the number set."""
    import torch

    check_threads(threads)
    from_env = os.environ.get("OMP_NUM_THREADS", "").strip()
    chosen = threads or (int(from_env) if from_env.isdigit() and int(from_env) > 0 else available_cores())
    torch.set_num_threads(chosen)
    warn_if_oversubscribed(chosen)
    return chosen


def warn_if_oversubscribed(threads: int) -> bool:
    """Warn when other work already keeps the cores busy (1-minute load average ≥ the cores less one half):
    this process's ``threads`` will then fight it for them."""
    if threads <= 1:  # one thread is the advice itself
        return False
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    cores = available_cores()
    if load + threads <= cores + 0.5 or load < cores - 0.5:
        return False
    logger.warning("warning: the machine is busy (load %.1f on %d cores) and this process uses %d threads; jobs "
                   "side by side run far faster with one thread each (--threads 1, or OMP_NUM_THREADS=1)", load,
                   cores, threads)
    return True
