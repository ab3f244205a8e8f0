"""``cotdistill world build``: tokenizer, teacher and a pretrained-like student, trained from seeds, plus a manifest.

The miniature follows how the papers' models are made:

* the **teacher** (Qwen2 architecture, ~1.9M parameters) learns the verbose teacher style from chat conversations
  of the train split (every trace with its own verbosity, so its samples differ in optional content);
* the **original student** (~1.0M parameters) is made in two phases, as real students are: a *base* phase of
  next-token prediction on plain documents of the ``base`` split (both chat styles, a narrative style, several
  phrasings, arithmetic drills; see :mod:`cotdistill.world.corpus`), then a short *chat* phase on the terse
  student style in the chat template, with the project's own trainer. It thus has a prior on teacher-style traces
  (it can continue and finish one) and a habit of its own (it writes terse when left alone).

The build then measures the properties the demo relies on and writes them into ``manifest.json``: accuracy per
difficulty with CI95, single-step arithmetic, continuation of half a teacher trace, and habit
(:mod:`cotdistill.stages.world_properties`). Stages can be rebuilt alone with ``only``.
"""

from __future__ import annotations

import json
import shutil
import time
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from cotdistill.config import check_field_rules, from_dict
from cotdistill.data.encode import render_conversation
from cotdistill.world import WORLD_SEED, world_records
from cotdistill.world.corpus import base_documents
from cotdistill.world.tokenizer import train_tokenizer

Stage = Literal["tokenizer", "teacher", "student", "measure"]
STAGES = typing.get_args(Stage)


@dataclass
class ModelSpec:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int


@dataclass
class PhaseSpec:
    """One training phase: ``documents`` texts (base) or chat records, ``steps`` optimizer steps."""

    documents: int
    steps: int
    batch_size: int = 16
    lr: float = 2e-3
    # tokens per packed row (plain-text phases). Longer than any document: a row cut shorter than a conversation
    # trains later steps without their question and never trains the later positions (a first build with 256-token
    # rows gave a teacher that lost the question's item and looped after ~256 tokens: 0.31 on the test split)
    block: int = 1024


@dataclass
class BuildSpec:
    teacher: ModelSpec
    student: ModelSpec
    teacher_phase: PhaseSpec  # the project's trainer, SFT on teacher-style chat records
    student_base: PhaseSpec  # packed next-token prediction on the base corpus
    student_chat: PhaseSpec  # the project's trainer, SFT on terse chat records (assistant turn supervised)
    tokenizer_documents: int = 4000
    eval_records: int = 300
    continuation_records: int = 200
    max_positions: int = 1024
    max_new_tokens: int = 640


FULL = BuildSpec(
    teacher=ModelSpec(hidden=192, layers=4, heads=4, kv_heads=2, intermediate=576),
    student=ModelSpec(hidden=160, layers=3, heads=4, kv_heads=2, intermediate=480),
    teacher_phase=PhaseSpec(documents=40000, steps=2400, batch_size=16, lr=2e-3),
    student_base=PhaseSpec(documents=45000, steps=1000, batch_size=8, lr=2e-3),
    student_chat=PhaseSpec(documents=4800, steps=300, batch_size=16, lr=1e-3),
)
QUICK = BuildSpec(
    teacher=ModelSpec(hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64),
    student=ModelSpec(hidden=16, layers=1, heads=2, kv_heads=1, intermediate=32),
    teacher_phase=PhaseSpec(documents=64, steps=3, batch_size=4),
    student_base=PhaseSpec(documents=64, steps=3, batch_size=4, block=64),
    student_chat=PhaseSpec(documents=32, steps=2, batch_size=8),
    tokenizer_documents=200, eval_records=6, continuation_records=4, max_new_tokens=48,
)


def build_tokenizer(spec: BuildSpec, out: Path):
    texts = list(base_documents(spec.tokenizer_documents, seed=WORLD_SEED))
    for style in ("teacher", "student"):
        texts += [rec.prompt + "\n" + rec.assistant_text() for rec in world_records("train", style, 500)]
    tok = train_tokenizer(texts)
    # the chat template's own words (role names) belong in the vocabulary too
    tok = train_tokenizer(texts + [render_conversation(tok, r) for r in world_records("train", "teacher", 50)])
    tok.save_pretrained(out)
    return tok


def init_model(spec: ModelSpec, tokenizer, max_positions: int, seed: int) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=spec.hidden, num_hidden_layers=spec.layers,
                         num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
                         intermediate_size=spec.intermediate, max_position_embeddings=max_positions,
                         tie_word_embeddings=True, rope_theta=10000.0, attention_dropout=0.0,
                         bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def chat_phase(init: Path, style: str, phase: PhaseSpec, work: Path, name: str, seed: int, progress: bool,
               save_every: int = 0) -> tuple[Path, dict]:
    """SFT with the project's trainer on ``phase.documents`` chat records of ``style`` (the assistant turn
    supervised, one conversation per row); returns the final weights' folder and the run's figures."""
    from cotdistill.data.formats import write_jsonl
    from cotdistill.training.config import TrainConfig
    from cotdistill.training.loop import train

    data_file = work / f"{name}.jsonl"
    write_jsonl(world_records("train", style, phase.documents), data_file, "cot")
    cfg = from_dict(TrainConfig, {
        "student": str(init), "teacher": None, "output_dir": str(work / name),
        "data": {"path": str(data_file), "val_fraction": 0.02},
        "encode": {"sections": "cotAns"},
        "loss": {"distill_ratio": 0.0},
        "optim": {"lr": phase.lr, "batch_size": phase.batch_size, "max_steps": phase.steps,
                  "warmup_steps": max(1, phase.steps // 20), "weight_decay": 0.01},
        "seed": seed, "device": "cpu", "eval_every": 0, "save_every": save_every, "keep_best": False,
        "progress": progress,
    })
    summary = train(cfg)
    figures = {k: summary.get(k) for k in ("steps", "processed_tokens", "supervised_tokens", "wall_time_s",
                                           "tokens_per_s", "val_ce")}
    return Path(cfg.output_dir) / "final", {**asdict(phase), **figures}


def build_teacher(spec: BuildSpec, tok, out: Path, work: Path, seed: int, progress: bool) -> dict:
    """The teacher learns its style by SFT on chat records, one conversation per row. (A first v2 build packed
    conversations into 1,024-token rows of plain next-token prediction: 850 steps of 8 rows reached only 0.08 on the
    test split, with 94% of its equations right; world v1's teacher, SFT for 1,800 steps of 16 records, reached 0.68.
    The number of optimizer steps, not tokens, was what the packed teacher lacked.)"""
    from cotdistill.training.checkpoint import save_pretrained_atomic

    model = init_model(spec.teacher, tok, spec.max_positions, seed)
    save_pretrained_atomic(model, tok, work / "teacher-init")
    final, figures = chat_phase(work / "teacher-init", "teacher", spec.teacher_phase, work, "teacher-chat", seed,
                                progress, save_every=spec.teacher_phase.steps // 4)
    shutil.rmtree(out / "teacher", ignore_errors=True)
    shutil.copytree(final, out / "teacher")
    return {"style": "teacher", "parameters": _parameters(model), "spec": asdict(spec.teacher), "seed": seed,
            "phases": {"chat": figures}}


def build_student(spec: BuildSpec, tok, out: Path, work: Path, seed: int, progress: bool) -> dict:
    from cotdistill.stages.world_pretrain import pack_documents, pretrain

    model = init_model(spec.student, tok, spec.max_positions, seed)
    base = spec.student_base
    blocks = pack_documents(tok, base_documents(base.documents, seed=seed), base.block)
    base_summary = pretrain(model, tok, blocks, work / "student-base", steps=base.steps, batch_size=base.batch_size,
                            lr=base.lr, seed=seed, progress=progress)
    final, chat_figures = chat_phase(work / "student-base", "student", spec.student_chat, work, "student-chat", seed,
                                     progress)
    shutil.rmtree(out / "student", ignore_errors=True)
    shutil.copytree(final, out / "student")
    return {"style": "student", "parameters": _parameters(model), "spec": asdict(spec.student), "seed": seed,
            "phases": {"base": {**asdict(base), **base_summary}, "chat": chat_figures}}


@dataclass
class WorldBuildConfig:
    out: str = "runs/world"
    quick: bool = False  # tiny models and step counts (a smoke test)
    only: Stage | None = None  # rebuild one stage, keep the rest

    def __post_init__(self) -> None:
        check_field_rules(self)


def build_world(out: str | Path, *, quick: bool = False, progress: bool = True,
                only: str | None = None) -> dict:
    """Build everything into ``out`` (tokenizer/, teacher/, student/, manifest.json); returns the manifest.
    ``only`` rebuilds one stage (tokenizer, teacher, student or measure) and keeps the rest."""
    if only not in (None, *STAGES):
        raise ValueError(f"only must be one of {STAGES}, got {only!r}")
    spec = QUICK if quick else FULL
    out = Path(out)
    work = out / "_work"
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    manifest_path = out / "manifest.json"
    if not only:
        manifest_path.unlink(missing_ok=True)
    if only in (None, "tokenizer") or not (out / "tokenizer").exists():
        tok = build_tokenizer(spec, out / "tokenizer")
    else:
        from cotdistill.models import load_tokenizer

        tok = load_tokenizer(str(out / "tokenizer"))
    update_manifest(manifest_path, {"world_seed": WORLD_SEED, "quick": quick, "vocab_size": len(tok),
                                    "spec": asdict(spec), "tokenizer": {"kind": "byte-level BPE, digits split",
                                                                        "documents": spec.tokenizer_documents}})
    if only in (None, "teacher"):
        teacher = build_teacher(spec, tok, out, work, seed=1, progress=progress)
        update_manifest(manifest_path, {"teacher": teacher}, "models")
    if only in (None, "student"):
        update_manifest(manifest_path, {"student": build_student(spec, tok, out, work, seed=2, progress=progress)},
                        "models")
    if only in (None, "measure"):
        from cotdistill.stages.world_properties import measure_world

        update_manifest(manifest_path, {"properties": measure_world(out, spec, progress=progress)})
        shutil.rmtree(work, ignore_errors=True)
    return update_manifest(manifest_path, {f"{only or 'build'}_seconds": round(time.time() - start, 1)})


def update_manifest(path: Path, values: dict, under: str | None = None) -> dict:
    """Read the manifest afresh, update it and write it atomically: stages built in parallel processes (teacher
    and student) each add their own keys without dropping the other's."""
    manifest = json.loads(path.read_text()) if path.exists() else {}
    (manifest.setdefault(under, {}) if under else manifest).update(values)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(path)
    return manifest
