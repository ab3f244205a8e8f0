"""The offline top-k cache: k = vocab reproduces the online teacher; a cache for other settings is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cotdistill.cli import main
from cotdistill.teacher.cache import CacheMismatchError, TeacherCache
from cotdistill.training.loop import train
from tests.training.helpers import tiny_config


def _build(tmp_path, k, *extra):
    cfg = tiny_config(tmp_path)  # writes models and data
    out = tmp_path / f"cache-{k}"
    assert main(["teacher", "cache", cfg.data.path, "--teacher", cfg.teacher, "--top-k", str(k), "--out", str(out),
                 "--device", "cpu", "--kl-target", "-1", "--dtype", "float16", *extra]) == 0  # fixed k
    return cfg, out


def test_full_vocab_cache_matches_online_teacher(tmp_path):
    cfg, cache = _build(tmp_path, 10_000, "--dtype", "float32")  # k larger than the vocab: every token kept
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["mean_kl_dense_vs_reconstructed"] == pytest.approx(0.0, abs=1e-7)  # float32 rounding only
    online = train(tiny_config(tmp_path, output_dir=str(tmp_path / "online"), **{"optim.max_steps": 2}))
    offline = train(tiny_config(tmp_path, output_dir=str(tmp_path / "offline"), teacher_cache=str(cache),
                                **{"optim.max_steps": 2}))
    logs = [[json.loads(line) for line in open(tmp_path / d / "metrics.jsonl")] for d in ("online", "offline")]
    for a, b in zip(*logs):
        # the stored float32 log-probs sum to 1 only to ~1e-7, which leaves a tail bucket of that size: ~1e-4 rel.
        assert b["kd"] == pytest.approx(a["kd"], rel=1e-3)
        assert b["ce"] == pytest.approx(a["ce"], rel=1e-5)
    assert offline["val_kd"] == pytest.approx(online["val_kd"], rel=1e-3)


def test_validation_from_a_file_the_cache_does_not_hold_reports_ce_only_and_keeps_the_best_by_it(tmp_path, caplog):
    """A cache holds the records of the file it was built on. Validation from another file (data.val_path) used to
    be computed without a teacher and reported as val_kd 0.0, with that 0 mixed into val_loss and the best
    checkpoint chosen by it."""
    import logging

    from cotdistill.data.formats import write_jsonl
    from cotdistill.world import world_records

    _, cache = _build(tmp_path, 8)
    val = tmp_path / "val.jsonl"
    write_jsonl(world_records("test", "student", 4, min_steps=2, max_steps=2), val, "cot")
    caplog.set_level(logging.WARNING, logger="cotdistill")
    summary = train(tiny_config(tmp_path, teacher_cache=str(cache), eval_every=2, keep_best=True,
                                **{"data.val_path": str(val)}))
    logs = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [log["step"] for log in logs if "val_ce" in log] == [2, 4]
    assert not any("val_kd" in log or "val_loss" in log for log in logs)
    assert "val_kd" not in summary and "val_loss" not in summary and summary["val_ce"] > 0
    assert all(log["kd"] > 0 for log in logs)  # training still reads the cache
    assert summary["best_checkpoint_by"] == "val_ce" and (tmp_path / "run" / "best").exists()
    warnings = [r.getMessage() for r in caplog.records if "does not hold the validation records" in r.getMessage()]
    assert len(warnings) == 1 and "val_ce only" in warnings[0]


def test_small_k_cache_size_and_quality(tmp_path):
    _, cache = _build(tmp_path, 8)
    manifest = json.loads((cache / "manifest.json").read_text())
    # uint16 ids + float16 log-probs: 4 bytes per kept entry
    assert manifest["bytes_per_supervised_token"] == pytest.approx(8 * 4, rel=0.05)
    # fewer kept entries lose more of the distribution: k = 8 < k = 32 < k = vocab (exact, 0)
    _, cache32 = _build(tmp_path, 32)
    kl8 = manifest["mean_kl_dense_vs_reconstructed"]
    kl32 = json.loads((cache32 / "manifest.json").read_text())["mean_kl_dense_vs_reconstructed"]
    assert kl8 > kl32 > 0
    c = TeacherCache.open(cache)
    ids, logp, _ = c.rows([0, 1])
    assert ids.shape[1] == 8 and np.all(np.diff(logp.numpy(), axis=1) <= 1e-3)  # sorted, best first


def test_cache_for_other_truncation_is_refused(tmp_path):
    _, cache = _build(tmp_path, 8)
    with pytest.raises(CacheMismatchError, match="truncation/encoding settings differ.*lsp"):
        train(tiny_config(tmp_path, teacher_cache=str(cache), **{"encode.truncation": "lsp", "encode.lsp": 0.5}))


def test_a_cache_of_another_teacher_is_refused_and_a_copied_teacher_is_the_same(tmp_path):
    import shutil

    cfg, cache = _build(tmp_path, 8)
    one_step = {"optim.max_steps": 1}
    with pytest.raises(CacheMismatchError, match="the run names the teacher .*student.*set teacher to"):
        train(tiny_config(tmp_path, teacher_cache=str(cache), teacher=cfg.student, **one_step))
    shutil.copytree(cfg.teacher, tmp_path / "teacher-copy")  # new path, new modification times, same weights
    train(tiny_config(tmp_path, teacher_cache=str(cache), teacher=str(tmp_path / "teacher-copy"),
                      output_dir=str(tmp_path / "copy"), **one_step))
    train(tiny_config(tmp_path, teacher_cache=str(cache), teacher=None, output_dir=str(tmp_path / "alone"),
                      **one_step))


def test_many_small_shards_hold_the_same_rows_as_one_and_k_equal_to_the_vocab_is_exact(tmp_path):
    import torch

    from cotdistill.data.encode import EncodeConfig, encode_records
    from cotdistill.data.prepare import load_split_records
    from cotdistill.models import load_model, load_tokenizer
    from cotdistill.teacher.cache import build_cache

    cfg = tiny_config(tmp_path)
    tok, teacher = load_tokenizer(cfg.teacher), load_model(cfg.teacher)
    records, _ = load_split_records(cfg.data.path, "auto", "raise", None)
    encode = EncodeConfig(sections="ans")
    examples = encode_records(tok, records, encode, "records").examples
    common = {"encode_config": encode, "data_path": cfg.data.path, "teacher_name": cfg.teacher, "progress": False}
    common["batch_size"] = 2  # the same batches (and padding) for both: equal to the last bit
    one = build_cache(teacher, tok, examples, tmp_path / "one", top_k=len(tok), logp_dtype="float32", **common)
    many = build_cache(teacher, tok, examples, tmp_path / "many", top_k=len(tok), logp_dtype="float32",
                       shard_rows=5, **common)
    # a shard is closed after the batch that passes 5 rows: here after every batch of two records
    assert (one["shards"], many["shards"]) == (1, -(-len(examples) // 2)) and many["rows"] == one["rows"]
    assert one["top_k"] == len(tok) and one["mean_kl_dense_vs_reconstructed"] == pytest.approx(0.0, abs=1e-6)
    a, b = TeacherCache.open(tmp_path / "one"), TeacherCache.open(tmp_path / "many")
    indices = [e.index for e in examples]
    for got, want in zip(b.rows(indices), a.rows(indices)):
        assert torch.equal(got, want)
    asked_more = build_cache(teacher, tok, examples[:2], tmp_path / "more", top_k=10_000, **common)
    assert asked_more["top_k"] == len(tok)  # the manifest records what was kept, not what was asked


def test_records_without_rows_are_marked_and_never_read(tmp_path):
    import numpy as np

    from cotdistill.data.encode import EncodeConfig, encode_records
    from cotdistill.data.prepare import load_split_records
    from cotdistill.models import load_model, load_tokenizer
    from cotdistill.teacher.cache import build_cache

    cfg = tiny_config(tmp_path)
    tok, teacher = load_tokenizer(cfg.teacher), load_model(cfg.teacher)
    records, _ = load_split_records(cfg.data.path, "auto", "raise", None)
    encode = EncodeConfig(sections="ans")
    # the odd ones "dropped"
    kept = [e for e in encode_records(tok, records, encode, "records").examples if e.index % 2 == 0]
    build_cache(teacher, tok, kept, tmp_path / "c", top_k=4, encode_config=encode, data_path=cfg.data.path,
                teacher_name=cfg.teacher, progress=False)
    index = np.load(tmp_path / "c" / "index.npy")
    assert [int(s) for s in index[:, 0]] == [0 if i % 2 == 0 else -1 for i in range(len(index))]
    assert [int(n) for n in index[1::2, 2]] == [0] * len(index[1::2])  # and no rows


def test_compact_cache_keeps_few_entries_where_the_teacher_is_sure_and_reads_back_what_it_stored(tmp_path):
    """kl_target: per position the fewest entries whose even-tail reconstruction is within the target; uint8
    log-probs relative to each row's maximum; the loss reads the reconstruction."""
    from cotdistill.losses import reconstruct_teacher_logp
    from cotdistill.teacher.cache import build_cache
    from cotdistill.training.loop import Trainer

    cfg = tiny_config(tmp_path)
    trainer = Trainer(cfg)
    common = {"encode_config": cfg.encode, "data_path": cfg.data.path, "teacher_name": cfg.teacher,
              "progress": False}
    teacher = trainer.teacher.model  # the online teacher's model
    full = build_cache(teacher, trainer.tokenizer, trainer.data.examples, tmp_path / "full", top_k=10_000,
                       logp_dtype="float32", **common)
    compact = build_cache(teacher, trainer.tokenizer, trainer.data.examples, tmp_path / "compact", top_k=64,
                          kl_target=1e-3, logp_dtype="uint8", **common)
    # 3 bytes an entry (uint16 id, uint8 step) and 5 a row (count, float16 maximum and step)
    entries = compact["mean_entries_per_token"]
    assert entries < 64 and compact["bytes_per_supervised_token"] == pytest.approx(3 * entries + 5, rel=0.01)
    assert compact["bytes_per_supervised_token"] < 0.3 * full["bytes_per_supervised_token"]
    # every position within the target, so the mean is too (the quantisation adds its part)
    assert compact["mean_kl_dense_vs_reconstructed"] < 2e-3
    a, b = TeacherCache.open(tmp_path / "full"), TeacherCache.open(tmp_path / "compact")
    ids, logp, tail = b.rows([0, 1])
    f_ids, f_logp, _ = a.rows([0, 1])
    dense = f_logp.new_full((len(ids), len(trainer.tokenizer)), 0.0).scatter_(1, f_ids, f_logp)
    # what was stored is what the dense teacher says, to the uint8 step, at each kept id
    assert (dense.gather(1, ids) - logp).abs().max() < 0.05
    recon = reconstruct_teacher_logp(ids, logp, tail, len(trainer.tokenizer))  # what the loss reads
    assert torch.allclose(recon.exp().sum(-1), torch.ones(len(ids)), atol=1e-4)
    kl = (dense.exp() * (dense - recon)).sum(-1)
    assert kl.mean().item() < 2e-3 and kl.max().item() < 1e-2
    trainer.close()


def test_ids_past_65536_are_packed_in_three_bytes():
    from cotdistill.teacher.cache import _id_dtype, _pack_ids, _unpack_ids

    ids = np.array([0, 1, 65_535, 65_536, 151_935, (1 << 24) - 1])
    assert _id_dtype(151_936) == "uint24" and _id_dtype(581) == "uint16" and _id_dtype(1 << 25) == "int32"
    packed = _pack_ids(ids, "uint24")
    assert packed.dtype == np.uint8 and packed.shape == (6, 3)
    assert _unpack_ids(packed, "uint24").tolist() == ids.tolist()


def test_a_cache_of_the_old_format_is_refused_with_what_to_do(tmp_path):
    from cotdistill.teacher.cache import CACHE_VERSION, CacheMismatchError

    _, cache = _build(tmp_path, 8)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["version"] = 1
    (cache / "manifest.json").write_text(json.dumps(manifest))
    cfg = tiny_config(tmp_path)
    with pytest.raises(CacheMismatchError,
                       match=f"format version 1; this cotdistill reads version {CACHE_VERSION}: rebuild"):
        train(tiny_config(tmp_path, teacher_cache=str(cache), output_dir=str(tmp_path / "o"), teacher=cfg.teacher))
