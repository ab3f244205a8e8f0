"""The one way cotdistill hashes a file, and the one check of a folder's files against a manifest of them.

Every byte is hashed (a fingerprint of the first and last MiB kept a retrained teacher's stale cache), read in
1 MiB blocks so a multi-gigabyte weight file never sits in memory. A hash is remembered for the rest of the
process, so a teacher fingerprinted at each stage of a sweep is read once, not once per stage.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

BLOCK = 1 << 20
# Linux stamps a write with a clock that ticks every few milliseconds: a file rewritten (same size, same inode) in
# the tick in which it was hashed keeps every stamp. So, as git does for its index, only a file whose last change
# is older than this is remembered; a fresh one (a checkpoint or cache just written) is hashed again when asked.
SETTLE_NS = 2_000_000_000

_remembered: dict[tuple, str] = {}


def _identity(path: Path, st: os.stat_result) -> tuple:
    # ctime moves on every write and on every os.utime, and no program can set it back
    return str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of every byte of ``path``; equal to ``hashlib.sha256(Path(path).read_bytes()).hexdigest()``."""
    path = Path(path)
    started = time.time_ns()
    key = _identity(path, path.stat())
    if key in _remembered:
        return _remembered[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    hex_digest = digest.hexdigest()
    if _identity(path, path.stat()) == key and key[-1] < started - SETTLE_NS:
        _remembered[key] = hex_digest
    return hex_digest


def describe_files(root: Path, names: list[str]) -> dict[str, dict]:
    """``{name: {"bytes", "sha256"}}`` for the files ``names`` (relative to ``root``): what a manifest lists."""
    return {name: {"bytes": (root / name).stat().st_size, "sha256": file_sha256(root / name)} for name in names}


def file_mismatch(root: Path, files: dict[str, dict]) -> str | None:
    """The first file of a manifest's ``files`` that is not as listed (missing, another size, another hash), as a
    sentence naming it, the expected and the found; ``None`` when all are. Sizes are compared first: a truncated
    file is named without reading it."""
    for name, expected in files.items():
        file = root / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != expected["bytes"]:
            return f"{name} has {file.stat().st_size} bytes, the manifest says {expected['bytes']}"
    for name, expected in files.items():
        found = file_sha256(root / name)
        if found != expected["sha256"]:
            return f"{name}: SHA-256 {found[:12]}…, the manifest says {expected['sha256'][:12]}…"
    return None
