"""One-pass scores equal per-action scores; models with different tokenizers trace together; world agreement."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from cotdistill.provenance.actions import split_actions
from cotdistill.provenance.scoring import score_actions, score_actions_separately
from cotdistill.provenance.trace import TraceConfig
from cotdistill.stages.trace import run_trace
from cotdistill.world import world_records
from cotdistill.world.tokenizer import CHAT_TEMPLATE
from tests.conftest import char_tokenizer, tiny_qwen


def bpe_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A tiny byte-level BPE trained here: token boundaries unlike the character tokenizer's."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def test_one_pass_equals_per_action_scoring():
    tok = char_tokenizer()
    model = tiny_qwen(len(tok), hidden=32, layers=2, seed=4)
    recs = world_records("test", "teacher", 3, min_steps=2, max_steps=3)
    responses = [r.assistant_text() for r in recs]
    actions = [split_actions(r) for r in responses]
    assert min(len(a) for a in actions) >= 8
    fast = score_actions(model, tok, [r.prompt for r in recs], responses, actions, batch_size=2)
    for rec, resp, acts, got in zip(recs, responses, actions, fast):
        ref = score_actions_separately(model, tok, rec.prompt, resp, acts)
        assert [a.n_tokens for a in got] == [a.n_tokens for a in ref] == [len(tok(a.text)["input_ids"]) for a in acts]
        torch.testing.assert_close(torch.tensor([a.logprob_sum for a in got]),
                                   torch.tensor([a.logprob_sum for a in ref]), atol=1e-4, rtol=1e-5)


def _save(model, tok, path):
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _trace(samples, teacher, student, distilled, out) -> TraceConfig:
    return TraceConfig(samples=str(samples), teacher=teacher, student=student, distilled=distilled, out=str(out),
                       device="cpu")


def test_models_with_different_tokenizers_trace_together(tmp_path, monkeypatch):
    recs = world_records("test", "teacher", 4, min_steps=2, max_steps=2)
    char = char_tokenizer()
    bpe = bpe_tokenizer([r.prompt + r.assistant_text() for r in world_records("train", "teacher", 200)])
    teacher = _save(tiny_qwen(len(bpe), seed=1), bpe, tmp_path / "t")
    student = _save(tiny_qwen(len(char), seed=2), char, tmp_path / "s")
    distilled = _save(tiny_qwen(len(char), seed=3), char, tmp_path / "d")
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"prompt": r.prompt, "response": r.assistant_text(), "correct": i % 2 == 0,
                                           "bench": "world"}) + "\n" for i, r in enumerate(recs)))
    summary = run_trace(_trace(samples, teacher, student, distilled, tmp_path / "out"), progress=False)
    rows = [json.loads(line) for line in open(tmp_path / "out" / "actions.jsonl")]
    assert summary["actions"] == len(rows) == sum(len(split_actions(r.assistant_text())) for r in recs)
    teacher_scores = [json.loads(line) for line in open(tmp_path / "out" / "scores-teacher.jsonl")]
    student_scores = [json.loads(line) for line in open(tmp_path / "out" / "scores-student.jsonl")]
    # each action's probability is its stored log-prob sum, length-normalised: exp(sum / n)
    for role, stored in (("p_teacher", teacher_scores), ("p_student", student_scores)):
        expected = [math.exp(lp / n) for row in stored for n, lp in row["scores"]]
        assert [r[role] for r in rows] == pytest.approx(expected, rel=1e-9)
    # the same actions, tokenized two ways: token counts per action differ (their sums can coincide)
    n_bpe = [s[0] for row in teacher_scores for s in row["scores"]]
    n_char = [s[0] for row in student_scores for s in row["scores"]]
    assert len(n_bpe) == len(n_char) == len(rows) and n_bpe != n_char
    from PIL import Image

    for name in ("position_shares.png", "response_example.png"):
        with Image.open(tmp_path / "out" / name) as image:
            assert image.format == "PNG" and min(image.size) >= 200
    page = (tmp_path / "out" / "trace.html").read_text()
    import html

    assert "every pairwise difference of p_T, p_S, p_D is at most α = 0.05" in page and "β = 0.1" in page
    assert f"All {len(rows)} actions of {len(recs)} responses" in page and "position_shares.png" in page
    # every action is on the page, coloured and labelled with its category and three probabilities
    labels = {"teacher": "teacher-originated", "student": "student-originated", "shared": "pre-existing, not enhanced",
              "boosted": "pre-existing, boosted"}
    for r in rows:
        assert (f'title="{labels[r["category"]]}: p_T={r["p_teacher"]:.3f} p_S={r["p_student"]:.3f} '
                f'p_D={r["p_distilled"]:.3f}">{html.escape(r["text"])}</span>') in page
    assert f"{summary['actions']}" in (tmp_path / "out" / "summary.md").read_text()
    # resumable: a second run with the same models re-uses every stored score (no model is loaded)
    (tmp_path / "out" / "actions.jsonl").unlink()
    with monkeypatch.context() as patch:
        patch.setattr("cotdistill.models.load_model", lambda *a, **k: pytest.fail("a stored score was recomputed"))
        again = run_trace(_trace(samples, teacher, student, distilled, tmp_path / "out"), progress=False)
    assert again["overall"] == summary["overall"]
    # ... and the same output folder with another distilled model scores that model (it printed the old model's
    # table under the new name before: the cache was keyed by sample index only)
    run_trace(_trace(samples, teacher, student, student, tmp_path / "out"), progress=False)
    run_trace(_trace(samples, teacher, student, student, tmp_path / "fresh"), progress=False)

    def p_distilled(folder):
        return [json.loads(line)["p_distilled"] for line in open(folder / "actions.jsonl")]

    first = [r["p_distilled"] for r in rows]
    assert p_distilled(tmp_path / "out") == p_distilled(tmp_path / "fresh") != first
    assert p_distilled(tmp_path / "out") == [r["p_student"] for r in rows]  # distilled := student, scored afresh


def test_categories_recover_generator_styles_on_the_world(tmp_path):
    """Responses written by the generator in both styles, traced with the packaged models (distilled := teacher)."""
    samples = tmp_path / "samples.jsonl"
    with open(samples, "w") as fh:
        for style in ("teacher", "student"):
            fh.writelines(json.dumps({"prompt": r.prompt, "response": r.assistant_text(), "correct": True}) + "\n"
                          for r in world_records("test", style, 12))
    config = _trace(samples, "world:teacher", "world:student", "world:teacher", tmp_path / "o")
    config.world_styles = True
    summary = run_trace(config, progress=False)
    conf = summary["confusion"]
    assert conf["teacher"]["teacher"] > 0.8 * sum(conf["teacher"].values())
    assert conf["student"]["student"] > 0.8 * sum(conf["student"].values())
    # sentences both styles write ("Now Ana has 12 pens.") are judged in context: inside a teacher-style response the
    # student finds them less likely, so many land in teacher/student rather than shared; the styled ones do not
    assert summary["agreement_with_generator_styles"] > 0.55  # a uniform guess over 4 categories scores ~0.3


def test_shared_text_context_gives_every_model_the_distilled_models_rendering(tmp_path):
    """A teacher whose template adds a system turn reads a different prefix under ``own_template``; under
    ``shared_text`` it reads the distilled model's rendering, the same tokens as the two students."""
    from tests.conftest import SYSTEM_TEMPLATE

    recs = world_records("test", "teacher", 3, min_steps=2, max_steps=2)
    teacher = _save(tiny_qwen(len(char_tokenizer()), seed=1), char_tokenizer(template=SYSTEM_TEMPLATE), tmp_path / "t")
    student = _save(tiny_qwen(len(char_tokenizer()), seed=2), char_tokenizer(), tmp_path / "s")
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"prompt": r.prompt, "response": r.assistant_text(), "correct": True,
                                           "bench": "world"}) + "\n" for r in recs))
    rows = {}
    for context in ("own_template", "shared_text"):
        config = _trace(samples, teacher, student, student, tmp_path / context)
        config.context = context
        summary = run_trace(config, progress=False)
        assert summary["context"] == context
        rows[context] = [json.loads(line) for line in open(tmp_path / context / "actions.jsonl")]
    own, shared = rows["own_template"], rows["shared_text"]
    assert [r["p_student"] for r in own] == [r["p_student"] for r in shared]  # same template: same prefix
    assert [r["p_teacher"] for r in own] != [r["p_teacher"] for r in shared]
    # shared_text for the teacher = scoring the student's rendering as raw text with the teacher
    from cotdistill.data.encode import render_prompt
    from cotdistill.provenance.scoring import score_with_cache

    rendered = [render_prompt(char_tokenizer(), r.prompt) for r in recs]
    actions = [split_actions(r.assistant_text()) for r in recs]
    direct = score_with_cache(teacher, ["0", "1", "2"], rendered, [r.assistant_text() for r in recs], actions,
                              tmp_path / "direct.jsonl", device="cpu", raw_context=True)
    expected = [math.exp(lp / n) for k in ("0", "1", "2") for n, lp in direct[k]]
    assert [r["p_teacher"] for r in shared] == pytest.approx(expected, rel=1e-6)


class BigramLM(torch.nn.Module):
    """A model-free reference: the logits at position t are row ``ids[t]`` of a fixed table, so every
    log-probability can be written down by hand."""

    def __init__(self, vocab: int, seed: int = 0) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(seed)))

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.table[input_ids])


def _hand_logprob(table: torch.Tensor, prev: int, token: int) -> float:
    row = [float(x) for x in table[prev]]
    return row[token] - math.log(sum(math.exp(x) for x in row))


def test_token_logprobs_equal_a_hand_computation_with_padding():
    from cotdistill.provenance.scoring import token_logprobs

    model = BigramLM(11)
    batch = [[3, 1, 4, 1, 5], [9, 2], [6, 5, 3, 5]]  # ragged: rows 2 and 3 are padded
    got = token_logprobs(model, batch, pad_id=0)
    table = model.table.detach()
    for ids, row in zip(batch, got):
        assert row[0] == 0.0 and len(row) == len(ids)
        assert row[1:] == pytest.approx([_hand_logprob(table, a, b) for a, b in itertools.pairwise(ids)], abs=1e-5)


def test_logit_rows_past_the_tokenizer_are_cut_before_the_softmax():
    """A model with padding rows (Qwen: 152,064 rows for 151,665 tokens) is scored over the tokenizer's tokens
    only, as the training loss and the teacher cache read it."""
    from cotdistill.provenance.scoring import token_logprobs

    model = BigramLM(11, seed=5)
    ids = [3, 1, 4, 1, 5]
    got = token_logprobs(model, [ids], pad_id=0, vocab=8)[0]
    table = model.table.detach()[:, :8]
    assert got[1:] == pytest.approx([_hand_logprob(table, a, b) for a, b in itertools.pairwise(ids)], abs=1e-5)
    assert got != token_logprobs(model, [ids], pad_id=0)[0]


def test_action_scores_are_the_sums_over_their_own_tokens():
    tok = char_tokenizer()
    model = BigramLM(len(tok), seed=3)
    prompt, response = "2+3?", "Add them. So 5."
    acts = split_actions(response)
    got = score_actions(model, tok, [prompt], [response], [acts])[0]
    from cotdistill.data.encode import render_prompt

    context = render_prompt(tok, prompt)
    enc = tok(context + response, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    table = model.table.detach()
    for action, score in zip(acts, got):
        first, last = len(context) + action.start, len(context) + action.end
        positions = [t for t, (s, _) in enumerate(offsets) if first <= s < last]
        assert score.n_tokens == len(positions) == len(action.text)  # one character per token
        expected = sum(_hand_logprob(table, ids[t - 1], ids[t]) for t in positions)
        assert score.logprob_sum == pytest.approx(expected, abs=1e-4)


def test_a_tokenizer_that_adds_bos_gets_no_second_one_inside_the_rendered_text():
    """Chat templates render their own BOS; tokenizing the rendered text must add nothing (a Llama-style tokenizer
    would otherwise put a BOS before the template's)."""
    from tokenizers.processors import TemplateProcessing

    from cotdistill.data.encode import render_prompt
    from cotdistill.provenance.scoring import tokenize_with_actions

    tok = char_tokenizer()
    bos = tok.convert_tokens_to_ids("<|endoftext|>")
    tok._tokenizer.post_processor = TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>",
                                                                                                   bos)])
    assert tok("a")["input_ids"][0] == bos  # the tokenizer does add one when asked
    response = "Add. Done."
    tokenized = tokenize_with_actions(tok, "q", response, split_actions(response))
    context = render_prompt(tok, "q")
    assert len(tokenized.ids) == len(context) - len("<|im_start|>") * 2 - len("<|im_end|>") + 3 + len(response)
    assert tokenized.ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
