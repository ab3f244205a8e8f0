"""The one file hash: every byte (checked against hashlib over the whole file), remembered per process only while
the file's stamps say it cannot have changed."""

from __future__ import annotations

import hashlib

import numpy as np

from cotdistill import hashing


def _bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _counting_opens(monkeypatch) -> list[str]:
    opened = []

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(hashing, "open", counting_open, raising=False)
    return opened


def test_the_hash_covers_every_byte_of_a_file_larger_than_the_block(tmp_path):
    data = bytearray(_bytes((3 << 20) + 123))  # three 1 MiB blocks and a partial one
    path = tmp_path / "w.bin"
    path.write_bytes(bytes(data))
    assert hashing.file_sha256(path) == hashlib.sha256(bytes(data)).hexdigest()
    data[(3 << 20) // 2] ^= 0xFF  # one byte in the middle: same size, same first and last MiB
    path.write_bytes(bytes(data))
    assert hashing.file_sha256(path) == hashlib.sha256(bytes(data)).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert hashing.file_sha256(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_a_settled_file_is_read_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "SETTLE_NS", 0)  # as if the file had been written long ago
    opened = _counting_opens(monkeypatch)
    path = tmp_path / "teacher.safetensors"
    path.write_bytes(_bytes(5000))
    first = hashing.file_sha256(path)
    assert hashing.file_sha256(path) == first and opened == [str(path)]
    path.with_name("new").write_bytes(_bytes(5000, seed=1))  # same size, replaced: another file
    path.with_name("new").replace(path)
    assert hashing.file_sha256(path) == hashlib.sha256(_bytes(5000, seed=1)).hexdigest() and len(opened) == 2


def test_a_file_rewritten_right_after_it_was_hashed_is_read_again(tmp_path, monkeypatch):
    """Same size, same inode, and (on a coarse clock) the same modification time: only a file whose stamps are older
    than ``SETTLE_NS`` is remembered, so a rewrite in the same clock tick cannot return the old hash."""
    opened = _counting_opens(monkeypatch)
    path = tmp_path / "shard.npy"
    path.write_bytes(_bytes(5000))
    hashing.file_sha256(path)
    path.write_bytes(_bytes(5000, seed=1))
    assert hashing.file_sha256(path) == hashlib.sha256(_bytes(5000, seed=1)).hexdigest() and len(opened) == 2
