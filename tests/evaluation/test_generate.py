from __future__ import annotations

import json

from cotdistill.cli import main
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
