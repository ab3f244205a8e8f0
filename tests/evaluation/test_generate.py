from __future__ import annotations

import json
import logging
import warnings

from cotdistill.cli import main
from cotdistill.data.encode import render_prompt
from cotdistill.generate import GenerationConfig, generate
from cotdistill.models import load_model, load_tokenizer
from cotdistill.world import world_records


def test_batched_left_padded_greedy_equals_one_by_one():
    tok, model = load_tokenizer("world:teacher"), load_model("world:teacher")
    questions = [r.prompt for r in world_records("test", n=5)]  # different lengths: left padding matters
    cfg = dict(max_new_tokens=40)
    batched, _ = generate(model, tok, questions, GenerationConfig(batch_size=5, **cfg), progress=False)
    single, _ = generate(model, tok, questions, GenerationConfig(batch_size=1, **cfg), progress=False)
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.hit_max_tokens for g in batched)  # 40 tokens is too short for any of these answers


def test_eval_cli_writes_results_and_samples(tmp_path):
    assert main(["eval", "world:teacher", "--bench", "world", "--limit", "6", "--out", str(tmp_path),
                 "--max-new-tokens", "300", "--samples", "2", "--temperature", "0.7"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    samples = [json.loads(line) for line in open(tmp_path / "samples.jsonl")]
    assert results["n"] == 6 and len(samples) == 12 and results["tokens_per_s"] > 0
    assert results["pass@2"] >= results["pass@1"]
    assert results["accuracy"] == sum(s["correct"] for s in samples) / 12
    assert {"prompt", "response", "extracted", "gold", "correct", "response_tokens"} <= set(samples[0])


def test_dropping_finished_rows_writes_what_plain_generate_writes():
    """Rows that wrote EOS leave the batch and the cache; every row's tokens equal HF generate's, row by row and
    in one padded batch, across finished and unfinished rows."""
    from cotdistill.generate import greedy_shrinking

    tok, model = load_tokenizer("world:teacher"), load_model("world:teacher")
    questions = [r.prompt for r in world_records("test", n=6)]
    cfg = dict(max_new_tokens=400, batch_size=6)
    shrunk, _ = generate(model, tok, questions, GenerationConfig(**cfg), progress=False)
    plain, _ = generate(model, tok, questions, GenerationConfig(shrink=False, **cfg), progress=False)
    assert [g.text for g in shrunk] == [g.text for g in plain]
    lengths = {g.num_tokens for g in shrunk}
    assert len(lengths) > 1 and not all(g.hit_max_tokens for g in shrunk)  # rows really finished at different steps
    tok.padding_side = "left"
    enc = tok(["hi", questions[0]], return_tensors="pt", padding=True, add_special_tokens=False)
    rows = greedy_shrinking(model, enc["input_ids"], enc["attention_mask"], 5, tok.eos_token_id)
    reference = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id,
                               eos_token_id=tok.eos_token_id, temperature=None, top_p=None, top_k=None)
    for row, ref in zip(rows, reference[:, enc["input_ids"].shape[1]:]):
        assert row == ref.tolist()[:len(row)]


def test_a_generation_config_with_a_repetition_penalty_is_decoded_by_hf_generate():
    """Greedy decoding that drops rows ignores logits processors; a checkpoint that asks for one (Qwen2.5-Instruct
    sets repetition_penalty 1.05) is decoded by HF generate, so results never depend on the shrink setting."""
    from cotdistill.generate import can_shrink

    model = load_model("world:teacher")
    assert can_shrink(model)
    model.generation_config.repetition_penalty = 1.05
    assert not can_shrink(model)


def test_padding_logit_rows_are_never_generated():
    """A head with rows past the tokenizer (Qwen's padding) is decoded over the tokenizer's tokens only, on every
    path: greedy with finished rows dropped, HF greedy, and sampling."""
    from tests.conftest import char_tokenizer, tiny_qwen

    tok = char_tokenizer()
    model = tiny_qwen(len(tok) + 8)

    def loud_padding(module, args, output) -> None:
        output.logits[..., len(tok):] = 1e4  # a padding row that would win every step

    model.register_forward_hook(loud_padding)
    decoded: list[list[int]] = []
    decode = tok.decode
    tok.decode = lambda ids, **kwargs: decoded.append(list(ids)) or decode(ids, **kwargs)  # what was generated
    questions = ["1+2?", "3+4+5?"]
    for config in (GenerationConfig(max_new_tokens=6), GenerationConfig(max_new_tokens=6, shrink=False),
                   GenerationConfig(max_new_tokens=6, temperature=1.0)):
        decoded.clear()
        generate(model, tok, questions, config, progress=False)
        assert len(decoded) == 2 and all(decoded), config
        assert all(i < len(tok) for row in decoded for i in row), config


def test_the_student_decodes_greedily_as_hf_generate_does():
    """The world student (another seed and size than the teacher above), decoded with finished rows dropped from
    the batch and the cache, writes what HF generate writes for each row up to that row's EOS."""
    from cotdistill.generate import can_shrink, greedy_shrinking

    tok, model = load_tokenizer("world:student"), load_model("world:student")
    assert can_shrink(model)  # else generate() would take HF generate's path and this test would compare nothing
    tok.padding_side = "left"
    prompts = [render_prompt(tok, r.prompt, None) for r in world_records("test", n=4)] + [render_prompt(tok, "hi")]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    rows = greedy_shrinking(model, enc["input_ids"], enc["attention_mask"], 60, tok.eos_token_id, vocab=len(tok))
    reference = model.generate(**enc, max_new_tokens=60, do_sample=False, pad_token_id=tok.pad_token_id,
                               eos_token_id=tok.eos_token_id, temperature=None, top_p=None, top_k=None)
    assert any(tok.eos_token_id in row for row in rows)  # at least one row finished early and left the batch
    for row, ref in zip(rows, reference[:, enc["input_ids"].shape[1]:]):
        assert row == ref.tolist()[:len(row)]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_generation_through_the_kept_cache_api_warns_nothing():
    """transformers 5.24 deprecates ``past_key_values`` (an argument: FutureWarning on every forward; an output
    attribute: a logged warning, once per process) for ``cache``; no path of generate may use the old name."""
    import transformers

    tok, model = load_tokenizer("world:student"), load_model("world:student")
    questions = [r.prompt for r in world_records("test", n=3)]
    records = _Records()
    transformers.utils.logging.warning_once.cache_clear()  # a warning logged once earlier in the process logs again
    logging.getLogger("transformers").addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for config in (GenerationConfig(max_new_tokens=20), GenerationConfig(max_new_tokens=20, shrink=False),
                           GenerationConfig(max_new_tokens=20, temperature=0.7)):
                generate(model, tok, questions, config, progress=False)
    finally:
        logging.getLogger("transformers").removeHandler(records)
    deprecations = [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert deprecations == []
    assert [m for m in records.messages if "deprecated" in m] == []


def test_nucleus_sampling_follows_the_tempered_distribution_and_drops_the_tail():
    import torch

    from cotdistill.generate import nucleus_sample

    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0]]).repeat(20_000, 1)
    torch.manual_seed(0)
    for temperature in (1.0, 0.5):
        drawn = torch.bincount(nucleus_sample(logits, temperature, 1.0), minlength=5).float() / len(logits)
        expected = torch.softmax(logits[0] / temperature, -1)
        assert (drawn - expected).abs().sum() / 2 < 0.02  # total variation, 20k draws
    # top_p 0.9 at T = 1: probabilities 0.607, 0.223, 0.135, 0.030, 0.004 -> the smallest set reaching 0.9 is the
    # first three (0.830 before the third), the rest never drawn, and the kept ones renormalised
    probs = torch.softmax(logits[0], -1)
    drawn = torch.bincount(nucleus_sample(logits, 1.0, 0.9), minlength=5).float() / len(logits)
    assert drawn[3:].sum() == 0
    kept = probs[:3] / probs[:3].sum()
    assert (drawn[:3] - kept).abs().max() < 0.02
    assert set(nucleus_sample(logits[:50], 1.0, 0.01).tolist()) == {0}  # the most likely token always stays


def test_rollout_sampling_drops_finished_rows_and_matches_generate_when_greedy(monkeypatch):
    import torch

    from cotdistill import generate as generate_module
    from cotdistill.generate import sample_continuations
    from tests.conftest import char_tokenizer, tiny_qwen

    tok = char_tokenizer()
    model = tiny_qwen(len(tok), hidden=32, layers=2, seed=3)
    prompts = [tok("<|im_start|>user\\nabc", add_special_tokens=False)["input_ids"],
               tok("<|im_start|>user\\nxy", add_special_tokens=False)["input_ids"]]
    common = dict(max_new_tokens=12, top_p=1.0, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, vocab=len(tok))
    shrunk = sample_continuations(model, prompts, temperature=0.0, seed=0, **common)
    monkeypatch.setattr(generate_module, "can_shrink", lambda model: False)  # transformers' generate instead
    assert sample_continuations(model, prompts, temperature=0.0, seed=0, **common) == shrunk
    monkeypatch.undo()
    first = sample_continuations(model, prompts, temperature=1.0, seed=5, **common)
    assert first == sample_continuations(model, prompts, temperature=1.0, seed=5, **common)
    assert first != sample_continuations(model, prompts, temperature=1.0, seed=6, **common)
    state = torch.get_rng_state()
    sample_continuations(model, prompts, temperature=1.0, seed=5, **common)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG stream untouched
