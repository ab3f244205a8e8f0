"""Any causal LM: tiny random models of several families train, evaluate, trace and count FLOPs.

Each model is built from its transformers config with the embedded world's tokenizer and saved with it, so every
folder is a complete model as a user would pass one, and any two of them can distil into each other. Each family
trains against the next family in the matrix as its teacher: every family is exercised as student and as teacher,
and every pairing crosses families.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    GemmaConfig,
    GemmaForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from cotdistill.compute import ModelShape, forward_flops, training_flops
from cotdistill.models import load_tokenizer

WORLD_TOKENIZER = "world:tokenizer"
# tiny: 2 layers of width 64; 1024 positions hold every world record, so none is dropped as overlong
SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 1024}
GPT2_SHAPE = {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 1024}
# family -> (config class, model class, config fields); tying is explicit because the families' defaults differ
FAMILIES = {
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {**SHAPE, "tie_word_embeddings": True}),
    "llama": (LlamaConfig, LlamaForCausalLM, {**SHAPE, "tie_word_embeddings": True}),
    "llama-untied": (LlamaConfig, LlamaForCausalLM, {**SHAPE, "tie_word_embeddings": False}),
    "phi3": (Phi3Config, Phi3ForCausalLM, {**SHAPE, "tie_word_embeddings": False}),  # fused qkv and gate_up
    "gemma": (GemmaConfig, GemmaForCausalLM, {**SHAPE, "head_dim": 32, "tie_word_embeddings": True}),  # ≠ 64 / 4
    # logit soft-capping and sliding-window layers (every other layer sees 32 tokens back)
    "gemma2": (Gemma2Config, Gemma2ForCausalLM, {**SHAPE, "head_dim": 32, "sliding_window": 32,
                                                 "tie_word_embeddings": True}),
    "gpt2": (GPT2Config, GPT2LMHeadModel, {**GPT2_SHAPE, "tie_word_embeddings": True}),  # Conv1D, two-matrix MLP
}
NAMES = list(FAMILIES)


def build(name: str, tokenizer, seed: int = 0, attn: str | None = None, **overrides) -> PreTrainedModel:
    """A random model of family ``name`` whose vocabulary and special ids are the tokenizer's; ``attn``: the
    attention implementation (by default the family's own, as ``from_pretrained`` picks it: Gemma2 has no SDPA);
    ``overrides``: config fields."""
    config_class, model_class, fields = FAMILIES[name]
    # a family's default special ids point into its own vocabulary (Phi3's pad is 32000): use the tokenizer's
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None}
    config = config_class(vocab_size=len(tokenizer), **ids, **{**fields, **overrides})
    if attn is not None:
        config._attn_implementation = attn
    torch.manual_seed(seed)
    return model_class(config).eval()


def teacher_of(name: str) -> str:
    return NAMES[(NAMES.index(name) + 1) % len(NAMES)]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(WORLD_TOKENIZER)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tokenizer) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    dirs = {}
    for seed, name in enumerate(NAMES):
        dirs[name] = root / name
        build(name, tokenizer, seed=seed).save_pretrained(dirs[name])
        tokenizer.save_pretrained(dirs[name])
    return dirs


@dataclass
class Run:
    name: str
    student: Path
    teacher: Path
    out: Path
    summary: dict


def train_config(name: str, dirs: dict[str, Path], out: Path, precision: str = "fp32"):
    from cotdistill.training.config import TrainConfig

    return TrainConfig(student=str(dirs[name]), teacher=str(dirs[teacher_of(name)]), output_dir=str(out),
                       data={"path": "world:train:teacher:12", "val_fraction": 0.25},
                       loss={"distill_ratio": 0.5, "chunk_size": 64},
                       optim={"lr": 1e-2, "batch_size": 3, "max_steps": 3, "warmup_steps": 1},
                       device="cpu", eval_every=0, save_every=0, progress=False, precision=precision)


@pytest.fixture(scope="module", params=NAMES)
def run(request, model_dirs, tmp_path_factory) -> Run:
    """One short KD run per family, shared by the training, evaluation and trace tests of that family."""
    from cotdistill.training.loop import train

    name, out = request.param, tmp_path_factory.mktemp(f"run-{request.param}")
    summary = train(train_config(name, model_dirs, out))
    return Run(name, model_dirs[name], model_dirs[teacher_of(name)], out, summary)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_kd_training_changes_the_weights_and_saves_a_loadable_model(run):
    logs = [json.loads(line) for line in open(run.out / "metrics.jsonl")]
    assert [log["step"] for log in logs] == [1, 2, 3]
    assert all(math.isfinite(log["loss"]) and log["kd"] > 0 for log in logs)
    assert math.isfinite(run.summary["val_loss"]) and run.summary["flops"] > 0
    before, after = _weights(run.student), _weights(run.out / "final")
    assert before.keys() == after.keys()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged
    model = AutoModelForCausalLM.from_pretrained(run.out / "final")
    assert isinstance(model, FAMILIES[run.name][1])
    # a tied head stays tied through training and saving; an untied one stays its own matrix
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied == FAMILIES[run.name][2]["tie_word_embeddings"]
    assert load_tokenizer(str(run.out / "final")).get_vocab() == load_tokenizer(WORLD_TOKENIZER).get_vocab()


@pytest.fixture(scope="module")
def evaluated(run) -> tuple[dict, Path]:
    from cotdistill.evaluation.benchmarks import evaluate_model
    from cotdistill.evaluation.spec import EvalSpec

    out = run.out / "eval"
    # sampled: after three steps at lr 1e-2 greedy decoding writes only spaces, a response without an action to trace
    spec = EvalSpec(limit=3, max_new_tokens=24, temperature=1.0, batch_size=3)
    results = evaluate_model(str(run.out / "final"), spec, out_dir=out, progress=False, device="cpu")
    return results, out / "samples.jsonl"


def test_evaluation_grades_every_problem(evaluated):
    results, samples_file = evaluated
    assert results["n"] == 3 and 0.0 <= results["accuracy"] <= 1.0 and 0.0 <= results["accuracy_flexible"] <= 1.0
    assert 0 < results["mean_response_tokens"] <= 24
    samples = [json.loads(line) for line in open(samples_file)]
    assert [s["prompt_index"] for s in samples] == [0, 1, 2] and all(s["response"].strip() for s in samples)


def test_trace_classifies_every_action(run, evaluated, tmp_path):
    from cotdistill.provenance.classify import CATEGORIES
    from cotdistill.provenance.trace import TraceConfig
    from cotdistill.stages.trace import run_trace

    summary = run_trace(TraceConfig(samples=str(evaluated[1]), teacher=str(run.teacher), student=str(run.student),
                                    distilled=str(run.out / "final"), out=str(tmp_path), device="cpu", limit=2),
                        progress=False)
    rows = [json.loads(line) for line in open(tmp_path / "actions.jsonl")]
    assert summary["actions"] == len(rows) > 0 and summary["responses"] == 2
    for row in rows:
        assert row["category"] in CATEGORIES
        assert all(0.0 < row[p] <= 1.0 for p in ("p_teacher", "p_student", "p_distilled"))
    for role in ("teacher", "student", "distilled"):
        scores = [s for line in open(tmp_path / f"scores-{role}.jsonl") for s in json.loads(line)["scores"]]
        assert len(scores) == len(rows) and all(n > 0 and math.isfinite(lp) for n, lp in scores)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_the_trainer_scores_the_models_own_logits(name, precision, tokenizer, tmp_path):
    """The CE and KD sums the trainer computes equal those of the student's and teacher's own forward logits (in
    fp32); in bf16 (autocast, fp32 weights) within 3% of them. The teacher is of the same family, so a failure names
    one family."""
    from cotdistill.losses import distill_sums
    from cotdistill.training.loop import Trainer

    dirs = {"student": tmp_path / "student", "teacher": tmp_path / "teacher"}
    build(name, tokenizer, seed=0).save_pretrained(dirs["student"])
    # untied: a random tied model's residual stream is mostly its input embedding, so at large logits it predicts
    # its input token again, and two tied models agree (a KD of ~0 that would compare nothing)
    build(name, tokenizer, seed=1, tie_word_embeddings=False).save_pretrained(dirs["teacher"])
    for folder in dirs.values():
        tokenizer.save_pretrained(folder)
    trainer = Trainer(train_config(name, {name: dirs["student"], teacher_of(name): dirs["teacher"]}, tmp_path / "o",
                                   precision))
    assert trainer.precision == precision

    def louder(module, args, output) -> None:
        # logits of std ~8, as trained models have: random ones are too small for Gemma2's soft-cap at 30 to show
        output.last_hidden_state.mul_(50.0)

    for model in (trainer.student, trainer.teacher.model):
        model.base_model.register_forward_hook(louder)  # the trainer's path and the model's own forward both
    with torch.no_grad():
        batch = trainer.collator.batch(trainer.data.examples[:2])
        got = trainer._loss_sums(batch, trainer.loss_module)[1:]  # [objective, CE, KD]
        ids, attention, labels = batch.tensors["input_ids"], batch.tensors["attention_mask"], batch.tensors["labels"]
        mask = labels[:, 1:] != -100
        logits = [model(input_ids=ids, attention_mask=attention).logits[:, :-1][mask]
                  for model in (trainer.student, trainer.teacher.model)]
        expected = torch.stack(distill_sums(*logits, labels[:, 1:][mask], trainer.cfg.loss))
    assert min(x.std() for x in logits) > 5.0 and got[1] > 100.0  # large logits, models apart: KD says something
    # bf16: 8 bits of mantissa in each matmul's inputs; the sums over ~100 positions stay within 3% (measured: the
    # largest relative difference over the families was below 1%)
    tolerance = {"fp32": dict(rtol=1e-4, atol=1e-2), "bf16": dict(rtol=3e-2, atol=1.0)}[precision]
    torch.testing.assert_close(got, expected, **tolerance)


@pytest.mark.parametrize("name", NAMES)
def test_analytic_flops_match_the_flop_counter(name, tokenizer):
    """Exact agreement is expected, and a drift of 0.1% fails: with eager attention FlopCounterMode counts exactly
    the matmuls the formula counts (every projection, QKᵀ and AV over the full square, the LM head on every row),
    and neither counts elementwise work (norms, RoPE, activations, softmax, soft-capping, biases). The 0.1% is room
    for a tiny matmul another transformers version may run (a rotary-frequency table computed as a product would be
    <0.01% here); a real mistake (a missing projection, Gemma's head_dim taken as hidden / heads, a third MLP matrix
    for GPT-2) is several percent.

    Eager, because FlopCounterMode has no formula for the CPU flash-attention kernel SDPA picks and would count
    attention as zero."""
    model = build(name, tokenizer, attn="eager")
    shape = ModelShape.from_config(model.config)
    batch, seq = 2, 64
    x = torch.randint(0, len(tokenizer), (batch, seq))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=x)
    assert forward_flops(shape, batch, seq) == pytest.approx(counter.get_total_flops(), rel=1e-3)
    # backward is two matmuls per forward one (input and weight gradients), which training_flops counts as 3x
    with FlopCounterMode(display=False) as counter:
        model.train()(input_ids=x, labels=x).loss.backward()
    assert training_flops(shape, None, batch, seq) == pytest.approx(counter.get_total_flops(), rel=1e-3)


def test_a_head_the_loss_does_not_reproduce_is_refused(tokenizer):
    """Cohere's logit_scale, Granite's logits_scaling or a head bias (Phi-2) change the logits after the output
    matrix; the trainer's loss would skip them, so such a model is refused rather than trained on another
    objective."""
    from cotdistill.training.objective import TrainingError, check_head_is_reproduced

    model = build("llama", tokenizer, tie_word_embeddings=False)
    check_head_is_reproduced(model, "student", len(tokenizer))  # a plain head passes
    head = model.get_output_embeddings()
    head.bias = torch.nn.Parameter(torch.full((head.out_features,), 0.5))
    with pytest.raises(TrainingError, match=r"the student \(LlamaForCausalLM\) computes its logits in a way"):
        check_head_is_reproduced(model, "student", len(tokenizer))
