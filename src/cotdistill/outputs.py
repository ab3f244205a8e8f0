"""One writer per output directory: a lock file that the operating system releases when the process ends."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from cotdistill.errors import UserError

LOCK_NAME = ".cotdistill.lock"


class OutputInUseError(UserError, RuntimeError):
    pass


@contextlib.contextmanager
def output_lock(folder: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``folder/.cotdistill.lock`` for the duration. A second run on the same folder is refused (two runs
    used to both exit 0 with interleaved metrics and each other's checkpoints). The lock is an ``flock``: a run
    that is killed leaves no stale lock behind. Where ``fcntl`` does not exist (Windows) nothing is locked."""
    if not enabled:
        yield
        return
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise OutputInUseError(f"{folder} is being written by another run (pid {holder}); wait for it, stop it, "
                                   "or choose another output directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
