"""The cross-tokenizer teacher end to end: with one tokenizer on both sides, every aligned span is one token and the
``spans`` objective equals ordinary KD at the aligned positions (loss and gradients) — on the world's tokenizer
and on SmolLM2's, with tiny models built on each; and the CLI trains the real student from the world teacher."""

from __future__ import annotations

import json

import pytest
import torch

from cotdistill.data.batching import collate
from cotdistill.data.encode import IGNORE_INDEX, EncodeConfig, encode_record
from cotdistill.losses import LossConfig, fused_objective_sums
from cotdistill.losses_cross import cross_objective_sums
from cotdistill.models import load_tokenizer
from cotdistill.teacher.cross import CrossTokenizerTeacher, align_example, row_key, shared_vocabulary
from cotdistill.teacher.online import OnlineTeacher
from cotdistill.world import world_records
from tests.conftest import tiny_qwen
from tests.test_real_student import REAL, needs_wheel


def _one_tokenizer_case(tokenizer_name: str, kind: str, lsp: float):
    tok = load_tokenizer(tokenizer_name, role="student")
    records = world_records("train", "teacher", 3, min_steps=2, max_steps=3)
    config = EncodeConfig(truncation="lsp", lsp=lsp) if lsp < 1 else EncodeConfig()
    examples = [encode_record(tok, r, config, i) for i, r in enumerate(records)]
    alignments = {row_key(e): align_example(tok, tok, r, e) for e, r in zip(examples, records)}
    assert all(s.student_count == 1 and s.teacher_count == 1 and s.student == s.teacher
               for a in alignments.values() for s in a.spans)
    student, teacher_model = tiny_qwen(len(tok), hidden=16, layers=1, seed=0), tiny_qwen(len(tok), hidden=16,
                                                                                          layers=1, seed=1)
    tensors = collate(examples, tok.pad_token_id)
    tensors["position_ids"] = None
    mask = tensors["labels"][:, 1:] != IGNORE_INDEX
    targets = tensors["labels"][:, 1:][mask]
    indices = [e.index for e in examples]
    cross = CrossTokenizerTeacher(teacher_model, cap=None, vocab=len(tok), pad_id=tok.pad_token_id, temperature=1.5,
                                  mode="spans", alignments=alignments, shared=shared_vocabulary(tok, tok))
    rows = cross.inputs(tensors, indices, mask)
    hidden = student.base_model(input_ids=tensors["input_ids"],
                                attention_mask=tensors["attention_mask"]).last_hidden_state[:, :-1][mask]
    loss = LossConfig(distill_ratio=1.0, kind=kind, temperature=1.5, chunk_size=64)
    weight = student.get_output_embeddings().weight
    ours = cross_objective_sums(hidden, weight, targets, loss, vocab=len(tok), teacher=rows)
    at_spans = torch.zeros(targets.shape[0])
    at_spans[rows.starts] = 1.0  # ordinary KD counted at the aligned positions only
    online = OnlineTeacher(teacher_model, None).inputs(tensors, indices, mask)
    plain = fused_objective_sums(hidden, weight, targets, loss, vocab=len(tok), teacher=online, weights=at_spans)
    return student, rows, ours, plain


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl"])
@pytest.mark.parametrize("lsp", [1.0, 0.5])
def test_one_world_tokenizer_on_both_sides_is_ordinary_kd(kind, lsp):
    student, rows, ours, plain = _one_tokenizer_case("world:teacher", kind, lsp)
    assert rows.starts.numel() > 20
    assert torch.allclose(ours[2], plain[2], rtol=1e-4)
    params = [student.get_output_embeddings().weight, student.model.layers[0].mlp.up_proj.weight]
    for a, b in zip(torch.autograd.grad(ours[0], params, retain_graph=True), torch.autograd.grad(plain[0], params)):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6)


@needs_wheel
def test_one_smollm2_tokenizer_on_both_sides_is_ordinary_kd():
    student, rows, ours, plain = _one_tokenizer_case(REAL, "forward_kl", 1.0)
    # float32 sums of 49,152 terms per row, whose -p + q parts cancel only in exact arithmetic: 1e-4 of ~1.6
    assert torch.allclose(ours[2], plain[2], rtol=5e-4)
    weight = student.get_output_embeddings().weight
    assert torch.allclose(torch.autograd.grad(ours[0], weight, retain_graph=True)[0],
                          torch.autograd.grad(plain[0], weight)[0], rtol=1e-3, atol=1e-6)


@needs_wheel
def test_the_real_student_trains_from_the_world_teacher_across_tokenizers(tmp_path):
    """The issue's command, one optimizer step: KD is measured (not 0) and the model is saved."""
    from cotdistill.cli import main

    out = tmp_path / "run"
    code = main(["train", f"student={REAL}", "teacher=world:teacher", "loss.cross_tokenizer=spans",
                 "data.path=world:train:teacher:4", "optim.max_steps=1", "optim.batch_size=2", f"output_dir={out}",
                 "save_every=0", "eval_every=0", "progress=false", "data.val_fraction=0"])
    assert code == 0
    step = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert step["kd"] > 0.01 and (out / "final" / "model.safetensors").exists()


@pytest.mark.parametrize(("setting", "found"), [
    ({"packing": True}, "packing"),
    ({"loss": {"cross_tokenizer": "spans", "distill_ratio": 0.0}}, "distill_ratio 0"),
    ({"loss": {"cross_tokenizer": "spans", "kind": "jsd"}}, "forward_kl or reverse_kl"),
])
def test_what_cross_tokenizer_kd_is_not_built_for_is_refused_by_the_config(setting, found):
    from cotdistill.config import ConfigError, from_dict
    from cotdistill.training.config import TrainConfig

    values = {"loss": {"cross_tokenizer": "spans"}, **setting}
    with pytest.raises((ConfigError, ValueError), match=found):
        from_dict(TrainConfig, values)


def test_a_truncation_whose_rows_are_not_record_starts_is_refused_in_one_line(tmp_path, capsys):
    """An ending-keeping truncation joins the lead and the ending: the student row is not a prefix of the record's
    rendering, which the alignment is computed on. One line, exit 2, no output folder."""
    from cotdistill.cli import main

    out = tmp_path / "run"
    assert main(["train", "student=world:student", "teacher=world:teacher", "loss.cross_tokenizer=uld",
                 "data.path=world:train:teacher:4", "encode.truncation=lsp_keep_answer", "encode.lsp=0.5",
                 f"output_dir={out}", "progress=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "start of their record" in err and "Traceback" not in err


def test_an_on_policy_sample_aligns_with_the_teachers_rendering_of_the_same_text():
    """The student's sample (its own tokens, then EOS) after the record's prompt: its text aligns span by span
    with the teacher's prompt followed by the same text, and its EOS with the teacher's; the prompt, unsupervised,
    gives no span."""
    from cotdistill.data.encode import render_prompt
    from cotdistill.teacher.cross import SampleAligner
    from tests.data.test_align import RECORD, pair

    student, teacher = pair()
    prompt = student(render_prompt(student, RECORD.prompt), add_special_tokens=False)["input_ids"]
    sample = student(RECORD.assistant_text(), add_special_tokens=False)["input_ids"] + [student.eos_token_id]
    ids, labels = prompt + sample, [IGNORE_INDEX] * len(prompt) + sample
    aligned = SampleAligner(student, teacher, {7: RECORD}).align(7, ids, labels)

    def text(tok, token_ids):
        return tok.convert_tokens_to_string(tok.convert_ids_to_tokens(token_ids))

    student_text = "".join(text(student, ids[s.student:s.student + s.student_count]) for s in aligned.spans)
    teacher_text = "".join(text(teacher, aligned.teacher_ids[s.teacher:s.teacher + s.teacher_count])
                           for s in aligned.spans)
    assert student_text == teacher_text == RECORD.assistant_text() + "<|im_end|>"
    assert aligned.spans[0].student == len(prompt)
    assert ([(s.student_count, s.teacher_count) for s in aligned.spans if s.student_count != s.teacher_count]
            == [(2, 1), (1, 2)])  # "12" and "34" in the thought, split differently by the two


def test_on_policy_training_runs_across_tokenizers(tmp_path):
    """The world student samples; the teacher scores its samples through the alignment (one tokenizer here, so
    every span is one token and the end of each turn is one too)."""
    from cotdistill.cli import main

    out = tmp_path / "run"
    assert main(["train", "student=world:student", "teacher=world:teacher", "loss.cross_tokenizer=spans",
                 "data.path=world:train:teacher:8", "loss.on_policy=1", "loss.distill_ratio=1",
                 "loss.kind=reverse_kl", "rollout.max_new_tokens=24", "optim.batch_size=4", "optim.max_steps=2",
                 "eval_every=0", "save_every=0", "progress=false", "data.val_fraction=0", f"output_dir={out}"]) == 0
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(s["on_policy"] == 1 and s["rollout_kd"] > 0 for s in steps)


@pytest.mark.parametrize(("top_k", "kl_target", "dtype", "tolerance"), [(10_000, None, "float32", 1e-5),
                                                                        (64, 1e-3, "uint8", 2e-2)])
def test_a_cache_built_across_tokenizers_gives_the_online_teachers_loss(tmp_path, top_k, kl_target, dtype,
                                                                        tolerance):
    """A student on the character tokenizer, the world teacher on its BPE: the cache stores the teacher at each
    aligned span (its own vocabulary) with the span's log-prob; read back, the loss is the online teacher's —
    exactly with every entry kept, within the KL target's reach with a compact uint8 cache."""
    from cotdistill.stages.teacher_cache import TeacherCacheConfig, build_teacher_cache
    from cotdistill.training.loop import Trainer
    from tests.training.helpers import tiny_config

    overrides = {"teacher": "world:teacher", "loss.cross_tokenizer": "spans", "loss.temperature": 1.5,
                 "data.val_fraction": 0.0}
    online = Trainer(tiny_config(tmp_path, **overrides))
    manifest = build_teacher_cache(TeacherCacheConfig(train=online.cfg, out=str(tmp_path / "cache"), top_k=top_k,
                                                      kl_target=kl_target, dtype=dtype), progress=False)
    assert manifest["rows_are"] == "spans" and manifest["vocab_size"] == 581
    cached = Trainer(tiny_config(tmp_path, **overrides, teacher_cache=str(tmp_path / "cache"),
                                 output_dir=str(tmp_path / "run2")))
    assert cached.teacher.model is None and cached.teacher_shape is None  # no teacher weights in training memory
    batch = online.plan.step_batches(0)[0]
    with torch.no_grad():
        a = online._loss_sums(batch, online.loss_module)
        b = cached._loss_sums(batch, cached.loss_module)
    assert a[2] > 1.0  # a student of another tokenizer, far from the teacher
    assert torch.allclose(a, b, rtol=tolerance)
    online.close()
    cached.close()


def test_a_cache_built_for_one_tokenizer_is_refused_by_a_run_across_two(tmp_path):
    from cotdistill.stages.teacher_cache import TeacherCacheConfig, build_teacher_cache
    from cotdistill.teacher.cache import CacheMismatchError
    from cotdistill.training.loop import Trainer
    from tests.training.helpers import tiny_config

    plain = tiny_config(tmp_path, **{"data.val_fraction": 0.0})
    build_teacher_cache(TeacherCacheConfig(train=plain, out=str(tmp_path / "cache")), progress=False)
    with pytest.raises(CacheMismatchError, match="built for one tokenizer"):
        Trainer(tiny_config(tmp_path, **{"loss.cross_tokenizer": "spans", "data.val_fraction": 0.0},
                            teacher_cache=str(tmp_path / "cache")))


def test_spans_past_the_teachers_positions_are_left_out():
    tok = load_tokenizer("world:teacher", role="student")
    record = world_records("train", "teacher", 1, min_steps=3, max_steps=3)[0]
    example = encode_record(tok, record, EncodeConfig(), 0)
    whole = align_example(tok, tok, record, example)
    cut = align_example(tok, tok, record, example, teacher_positions=40)
    assert len(cut.spans) < len(whole.spans) and len(cut.teacher_ids) <= 40
    assert cut.spans == [s for s in whole.spans if s.teacher + s.teacher_count <= 40]
