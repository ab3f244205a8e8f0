"""One teacher interface: the online teacher and a cache built from it give the loss the same teacher, a cache covers
the records it was built on (by content), and both cut the padding rows past the tokenizer by the same rule."""

from __future__ import annotations

import pytest
import torch

from cotdistill.data.encode import IGNORE_INDEX, EncodedExample, encode_records
from cotdistill.losses import distill_sums
from cotdistill.models import ModelError, load_tokenizer
from cotdistill.teacher.cache import CacheMismatchError, TeacherCache, build_cache
from cotdistill.training.loop import Trainer
from cotdistill.world import world_records
from tests.conftest import tiny_qwen
from tests.training.helpers import tiny_config


def _full_cache(trainer: Trainer, path) -> TeacherCache:
    """The online teacher stored: every token kept, float32, for the training records and the validation tail."""
    cfg = trainer.cfg
    build_cache(trainer.teacher.model, trainer.tokenizer, trainer.data.examples + trainer.data.val_examples, path,
                top_k=len(trainer.tokenizer), encode_config=cfg.encode, data_path=cfg.data.path,
                teacher_name=cfg.teacher, logp_dtype="float32", progress=False)
    return TeacherCache.open(path)


def _loss(trainer: Trainer, teacher, batch):
    """``[objective, CE, KD]`` sums through ``StudentLoss`` with ``teacher``'s inputs, those inputs, and the
    gradient of the objective on the student's output matrix."""
    t = batch.tensors
    targets = t["labels"][:, 1:]
    mask = targets != IGNORE_INDEX
    inputs = teacher.inputs(t, batch.indices, mask)
    trainer.loss_module.zero_grad(set_to_none=True)
    sums = trainer.loss_module(t["input_ids"], t["attention_mask"], t["position_ids"], mask, targets[mask], inputs)
    sums[0].backward()
    return sums.detach(), inputs, trainer.student.get_output_embeddings().weight.grad.clone()


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_a_full_vocabulary_cache_gives_the_loss_what_the_online_teacher_gives(tmp_path, packed):
    """Values and gradients; packed, the cache's rows follow the records along the row as the mask does."""
    trainer = Trainer(tiny_config(tmp_path))
    with torch.no_grad():  # a random teacher is nearly uniform: larger logits give KD something to compare
        trainer.teacher.model.get_output_embeddings().weight.mul_(20.0)
    try:
        cache = _full_cache(trainer, tmp_path / "cache")
        examples = trainer.data.examples[:4]
        batch = trainer.collator.packed_batch([examples]) if packed else trainer.collator.batch(examples)
        online, online_inputs, online_grad = _loss(trainer, trainer.teacher, batch)
        cached, cached_inputs, cached_grad = _loss(trainer, cache, batch)
    finally:
        trainer.close()
    n, vocab = batch.num_supervised, len(trainer.tokenizer)
    assert online_inputs.hidden.shape[0] == n and online_inputs.weight.shape[0] >= vocab
    assert cached_inputs.ids.shape == cached_inputs.logp.shape == (n, vocab)
    assert cached_inputs.tail.shape == (n,)
    assert online[2] > 0.5 * n  # the two models disagree: KD compares something
    # float32 log-probs stored and read back: equal to rounding
    torch.testing.assert_close(cached, online, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cached_grad, online_grad, rtol=1e-4, atol=1e-4)  # gradients up to ~80


def test_a_cache_covers_the_records_it_was_built_on_by_content_not_by_index(tmp_path):
    trainer = Trainer(tiny_config(tmp_path))  # the validation tail is split off the cached file
    try:
        cache = _full_cache(trainer, tmp_path / "cache")
        assert cache.covers(trainer.data.examples) and cache.covers(trainer.data.val_examples)
        # another file's records count from index 0 again, as the cached ones do
        other = encode_records(trainer.tokenizer, world_records("test", "student", 3, min_steps=2, max_steps=2),
                               trainer.cfg.encode, "other").examples
        assert [e.index for e in other] == [0, 1, 2] and not cache.covers(other)
        assert trainer.teacher.covers(other)  # the online teacher computes any record
        # a record cut after the cache was built (as the warm-up's): not covered, and its rows are refused
        e = trainer.data.examples[0]
        cut = EncodedExample(e.input_ids[:8], e.input_ids[:8], e.segments[:8], e.index, 8)
        assert not cache.covers([cut])
        batch = trainer.collator.batch([cut])
        with pytest.raises(CacheMismatchError, match="rows for records .* supervised positions"):
            cache.inputs(batch.tensors, batch.indices, batch.tensors["labels"][:, 1:] != IGNORE_INDEX)
    finally:
        trainer.close()


def test_padding_rows_past_the_tokenizer_are_cut_alike_by_the_online_teacher_and_the_cache(tmp_path):
    """A teacher with 13 output rows past the tokenizer (as Qwen's 152,064 for 151,665 tokens), made to hold much of
    its mass: the online teacher, the cache built from it and the reconstruction all read the tokenizer's rows."""
    cfg = tiny_config(tmp_path)  # writes the models; the teacher is replaced by a padded one
    tok = load_tokenizer(cfg.teacher)
    vocab = len(tok)
    padded = tiny_qwen(vocab + 13, hidden=32, layers=1, seed=1)
    ids = torch.tensor([tok("What is 2 + 3? Think first.").input_ids])
    with torch.no_grad():  # the padding rows point along the mean final hidden state: large logits there
        direction = padded.base_model(input_ids=ids).last_hidden_state[0].mean(0)
        padded.get_output_embeddings().weight[vocab:] = 3.0 * direction / direction.norm()
    padded.save_pretrained(tmp_path / "teacher")
    trainer = Trainer(cfg)
    try:
        assert trainer.vocab == vocab
        cache = _full_cache(trainer, tmp_path / "cache")
        assert cache.manifest["vocab_size"] == vocab
        batch = trainer.collator.batch(trainer.data.examples[:4])
        online = _loss(trainer, trainer.teacher, batch)[0]
        cached = _loss(trainer, cache, batch)[0]
        t = batch.tensors
        mask = t["labels"][:, 1:] != IGNORE_INDEX
        with torch.no_grad():
            logits = [m(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).logits[:, :-1][mask]
                      for m in (trainer.student, trainer.teacher.model)]
    finally:
        trainer.close()
    assert logits[1].softmax(-1)[:, vocab:].sum(-1).mean() > 0.3  # uncut, the padding rows would weigh
    ce, kd = distill_sums(logits[0], logits[1][:, :vocab], t["labels"][:, 1:][mask], cfg.loss)  # naive reference
    torch.testing.assert_close(online[1:], torch.stack([ce, kd]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cached[1:], torch.stack([ce, kd]), rtol=1e-4, atol=1e-4)


def test_the_cache_builder_refuses_a_teacher_with_fewer_rows_than_the_tokenizer(tmp_path):
    cfg = tiny_config(tmp_path)
    tok = load_tokenizer(cfg.teacher)
    examples = encode_records(tok, world_records("train", "teacher", 2, min_steps=2, max_steps=2), cfg.encode,
                              "records").examples
    with pytest.raises(ModelError, match=f"teacher {len(tok) - 5}, tokenizer {len(tok)} tokens"):
        build_cache(tiny_qwen(len(tok) - 5, layers=1), tok, examples, tmp_path / "cache", top_k=4,
                    encode_config=cfg.encode, data_path=cfg.data.path, teacher_name=cfg.teacher, progress=False)


@pytest.mark.parametrize("dtype, top_k", [("uint8", 10_000), ("uint8", 6), ("float16", 6)])
def test_the_manifests_kl_is_the_kl_of_what_training_reads_back(tmp_path, dtype, top_k):
    """The stored values (uint8 steps, float16) are what the loss reads: the manifest's KL is measured on them, not
    on the log-probs before storage (it was, and called a uint8 cache as exact as a float32 one)."""
    import json

    from cotdistill.cli import main
    from cotdistill.data.batching import collate
    from cotdistill.data.encode import IGNORE_INDEX
    from cotdistill.data.prepare import load_split_records
    from cotdistill.losses import reconstruct_teacher_logp
    from cotdistill.models import load_model, load_tokenizer
    from cotdistill.teacher.cache import TeacherCache
    from tests.training.helpers import tiny_config

    cfg = tiny_config(tmp_path)
    out = tmp_path / "cache"
    assert main(["teacher", "cache", cfg.data.path, "--teacher", cfg.teacher, "--top-k", str(top_k),
                 "--kl-target", "-1", "--dtype", dtype, "--out", str(out), "--device", "cpu"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    from cotdistill.data.encode import encode_records

    tok = load_tokenizer(cfg.teacher)
    examples = encode_records(tok, load_split_records(cfg.data.path)[0], cfg.encode, cfg.data.path).examples
    teacher, cache = load_model(cfg.teacher), TeacherCache.open(out)
    batch = collate(examples, tok.pad_token_id)
    with torch.no_grad():
        logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    dense = torch.log_softmax(logits[batch["labels"][:, 1:] != IGNORE_INDEX].float(), -1)
    ids, logp, tail = cache.rows([e.index for e in examples])
    recon = reconstruct_teacher_logp(ids, logp, tail, dense.shape[-1])
    read_back = (dense.exp() * (dense - recon)).sum(-1).mean().item()
    assert manifest["mean_kl_dense_vs_reconstructed"] == pytest.approx(read_back, rel=1e-3, abs=1e-7)
    if top_k > len(tok):  # every token kept: all that is lost is the uint8 rounding, and it shows
        assert read_back > 1e-6


def test_one_token_left_out_gets_all_the_tail_mass_and_the_cache_may_go_in_a_new_folder(tmp_path):
    """With every token but one kept, the one left out is the whole tail: its log-prob is log(1 - kept mass), not
    the floor. The cache folder's parents are made as needed."""
    import json

    from cotdistill.cli import main

    cfg = tiny_config(tmp_path)
    tok = load_tokenizer(cfg.teacher)
    out = tmp_path / "new" / "deeper" / "cache"
    assert main(["teacher", "cache", cfg.data.path, "--teacher", cfg.teacher, "--top-k", str(len(tok) - 1),
                 "--kl-target", "-1", "--dtype", "float32", "--out", str(out), "--device", "cpu"]) == 0
    assert json.loads((out / "manifest.json").read_text())["top_k"] == len(tok) - 1
    ids, logp, tail = TeacherCache.open(out).rows([0, 1])
    kept_mass = logp.double().exp().sum(-1)
    assert torch.allclose(tail.double(), (1.0 - kept_mass).clamp_min(1e-30).log(), atol=1e-3)
    assert (tail > -30).any()  # a real tail, not the floor
