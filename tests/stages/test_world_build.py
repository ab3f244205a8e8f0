"""``cotdistill world build`` and the properties it measures on the models it builds."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from cotdistill.cli import main


def test_quick_build_runs(tmp_path):
    assert main(["world", "build", "--out", str(tmp_path / "w"), "--quick"]) == 0
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert set(manifest["models"]) == {"teacher", "student"}
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "w" / "teacher")
    assert isinstance(model(input_ids=torch.tensor([[1, 2, 3]])).logits, torch.Tensor)


def test_step_accuracy_checks_each_equation():
    from cotdistill.stages.world_properties import step_accuracy

    got = step_accuracy(["12 + 5 = 17.\n17 + 3 * 4 = 29.", "Check: 29 - 4 = 26. 84 / 2 = 42. 6 * 3 = 19."])
    assert got == {"equations": 5, "right": 3 / 5}


@pytest.fixture(scope="module")
def world_models():
    from cotdistill.models import load_model, load_tokenizer

    torch.manual_seed(0)
    return load_tokenizer("world:tokenizer"), load_model("world:student")


def test_original_student_continues_half_a_teacher_trace_to_an_answer(world_models):
    """The property the truncation protocol relies on, measured on the committed student: given the first half of
    a teacher trace in its chat turn, it ends with </think> and an answer rather than looping to the token limit.
    The build measured the share on 200 test problems (manifest: properties.continuation); here 40 must reach 0.8.
    (What it writes on the way is a finding, not a property: this student mostly wraps up at once with the running
    total, so its continuations are rarely right; see docs/results.md.)"""
    from cotdistill.stages.world_properties import continuation

    tokenizer, student = world_models
    got = continuation(student, tokenizer, 40, 512, progress=False)
    assert got["finished"] >= 0.8 and got["hit_max_tokens"] == 0.0


def test_original_student_keeps_its_own_terse_habit(world_models):
    """With an empty assistant turn the student opens in its own style (provenance's ground truth). Threshold:
    0.9 of 30 responses (the build measured it on 300: properties.habit)."""
    from cotdistill.evaluation.benchmarks import evaluate, load_benchmark
    from cotdistill.generate import GenerationConfig
    from cotdistill.stages.world_properties import first_style

    tokenizer, student = world_models
    _, samples = evaluate(student, tokenizer, load_benchmark("world", limit=30), GenerationConfig(max_new_tokens=256),
                          bench="world", progress=False)
    opened = [first_style(s["response"]) for s in samples]
    assert opened.count("student") / len(opened) >= 0.9
