"""What a teacher cache was built from, and what it holds, is verified: the teacher by every byte of its weight
files, each cache file by the size and SHA-256 its manifest lists."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cotdistill.data.encode import EncodeConfig, encode_records
from cotdistill.data.prepare import load_split_records
from cotdistill.models import load_model, load_tokenizer, weights_fingerprint
from cotdistill.teacher.cache import CACHE_VERSION, CacheMismatchError, TeacherCache, build_cache
from tests.training.helpers import tiny_config


def test_a_teacher_whose_middle_bytes_changed_gets_another_fingerprint(tmp_path):
    """The old fingerprint read each file's size and first and last MiB: retrained middle tensors kept the stale
    cache (cached KD 1.95 vs online 12.53)."""
    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    data = bytearray(np.random.default_rng(0).integers(0, 256, (3 << 20) + 7, dtype=np.uint8).tobytes())
    weights = folder / "model.safetensors"
    weights.write_bytes(bytes(data))
    before = weights_fingerprint(str(folder))
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    assert weights_fingerprint(str(folder)) != before


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    cfg = tiny_config(root)
    tok, teacher = load_tokenizer(cfg.teacher), load_model(cfg.teacher)
    records, _ = load_split_records(cfg.data.path, "auto", "raise", None)
    encode = EncodeConfig(sections="ans")
    examples = encode_records(tok, records[:6], encode, "records").examples
    build_cache(teacher, tok, examples, root / "cache", top_k=4, encode_config=encode, data_path=cfg.data.path,
                teacher_name=cfg.teacher, batch_size=2, shard_rows=1, progress=False)  # 3 shards
    return root / "cache"


def _copy(cache_dir, tmp_path):
    import shutil

    shutil.copytree(cache_dir, tmp_path / "cache")
    return tmp_path / "cache"


def _other_values(path):
    """The same array shape and dtype, so the same number of bytes, with other values."""
    array = np.load(path)
    np.save(path, (array + 1).astype(array.dtype))


def test_the_manifest_lists_every_file_with_its_size_and_hash(cache_dir):
    import hashlib

    files = json.loads((cache_dir / "manifest.json").read_text())["files"]
    on_disk = sorted(p.relative_to(cache_dir).as_posix() for p in cache_dir.rglob("*.npy"))
    assert sorted(files) == on_disk and "index.npy" in files and "shard-00001/logp.npy" in files
    for name, entry in files.items():
        data = (cache_dir / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert TeacherCache.open(cache_dir).manifest["files"] == files


@pytest.mark.parametrize("tamper, found", [
    (lambda c: _other_values(c / "shard-00001" / "logp.npy"), r"shard-00001/logp.npy: SHA-256 [0-9a-f]{12}"),
    (lambda c: _other_values(c / "index.npy"), r"index.npy: SHA-256"),
    (lambda c: (c / "shard-00000" / "ids.npy").write_bytes(b"\x93NUMPY"), r"shard-00000/ids.npy has 6 bytes, the "
                                                                            r"manifest says \d+"),
    (lambda c: (c / "shard-00000" / "counts.npy").unlink(), r"shard-00000/counts.npy is missing"),
])
def test_a_cache_file_that_is_not_what_was_built_is_refused_on_open(cache_dir, tmp_path, tamper, found):
    """A shard rewritten with other values of the same size was read (KD 2.57 vs 2.02)."""
    cache = _copy(cache_dir, tmp_path)
    tamper(cache)
    with pytest.raises(CacheMismatchError, match=f"teacher cache {cache}: {found}.*rebuild it with `cotdistill "
                                                 "teacher cache`") as err:
        TeacherCache.open(cache)
    assert "\n" not in str(err.value)


def test_a_cache_built_before_files_were_hashed_is_refused_with_what_to_do(cache_dir, tmp_path):
    cache = _copy(cache_dir, tmp_path)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["version"] = 2
    del manifest["files"]
    (cache / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheMismatchError, match=f"format version 2; this cotdistill reads version {CACHE_VERSION}: "
                                                 "rebuild it"):
        TeacherCache.open(cache)
