"""``cotdistill world build``: tokenizer, tiny teacher and student, trained from seeds, plus a manifest.

The teacher (Qwen2 architecture, ~1.9M parameters) is trained on teacher-style traces; the original student
(~0.5M parameters) on student-style traces for fewer steps, so it is clearly weaker on the harder problems. Both
are trained with the project's own trainer (``distill_ratio = 0``: plain SFT) and evaluated with its own
evaluation on the test split.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from cotdistill.config import from_dict
from cotdistill.data.encode import render_conversation
from cotdistill.world import WORLD_SEED, world_records
from cotdistill.world.tokenizer import train_tokenizer


@dataclass
class ModelSpec:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    train_records: int
    max_steps: int
    batch_size: int = 16
    lr: float = 2e-3


@dataclass
class BuildSpec:
    teacher: ModelSpec
    student: ModelSpec
    tokenizer_records: int = 4000
    eval_records: int = 300
    max_positions: int = 512


FULL = BuildSpec(
    teacher=ModelSpec(hidden=192, layers=4, heads=4, kv_heads=2, intermediate=576, train_records=30000,
                      max_steps=1800),
    student=ModelSpec(hidden=128, layers=2, heads=4, kv_heads=2, intermediate=384, train_records=30000,
                      max_steps=2000),
)
QUICK = BuildSpec(
    teacher=ModelSpec(hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, train_records=64, max_steps=3,
                      batch_size=8),
    student=ModelSpec(hidden=16, layers=1, heads=2, kv_heads=1, intermediate=32, train_records=64, max_steps=2,
                      batch_size=8),
    tokenizer_records=200, eval_records=8,
)


def build_tokenizer(spec: BuildSpec, out: Path):
    texts = []
    for style in ("teacher", "student"):
        for rec in world_records("train", style, spec.tokenizer_records):
            texts.append(rec.prompt + "\n" + rec.assistant_text())
    tok = train_tokenizer(texts)
    # the chat template's own words (role names) belong in the vocabulary too
    tok = train_tokenizer(texts + [render_conversation(tok, r) for r in world_records("train", "teacher", 50)])
    tok.save_pretrained(out)
    return tok


def init_model(spec: ModelSpec, vocab: int, max_positions: int, seed: int) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=vocab, hidden_size=spec.hidden, num_hidden_layers=spec.layers,
                         num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
                         intermediate_size=spec.intermediate, max_position_embeddings=max_positions,
                         tie_word_embeddings=True, rope_theta=10000.0, attention_dropout=0.0,
                         bos_token_id=None, eos_token_id=None)
    return Qwen2ForCausalLM(config)


def train_world_model(name: str, style: str, spec: ModelSpec, build: BuildSpec, tok, out: Path, work: Path,
                      seed: int, progress: bool) -> dict:
    from cotdistill.train.config import TrainConfig
    from cotdistill.train.loop import train

    init_dir = work / f"{name}-init"
    model = init_model(spec, len(tok), build.max_positions, seed)
    model.config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(init_dir)
    tok.save_pretrained(init_dir)
    data_file = work / f"{name}-train.jsonl"
    from cotdistill.data.formats import write_jsonl

    write_jsonl(world_records("train", style, spec.train_records), data_file, "cot")
    cfg = from_dict(TrainConfig, {
        "student": str(init_dir), "teacher": None, "output_dir": str(work / f"{name}-run"),
        "data": {"path": str(data_file), "val_fraction": 0.02},
        "encode": {"sections": "cotAns"},
        "loss": {"distill_ratio": 0.0},
        "optim": {"lr": spec.lr, "batch_size": spec.batch_size, "max_steps": spec.max_steps,
                  "warmup_steps": max(1, spec.max_steps // 20), "weight_decay": 0.01},
        "seed": seed, "device": "cpu", "eval_every": 0, "save_every": 200, "keep_best": False,
        "progress": progress,
    })
    summary = train(cfg)
    final = Path(cfg.output_dir) / "final"
    shutil.rmtree(out / name, ignore_errors=True)
    shutil.copytree(final, out / name)
    params = sum(p.numel() for p in model.parameters())
    return {"style": style, "parameters": params, "spec": asdict(spec), "seed": seed,
            "train_summary": {k: summary[k] for k in ("steps", "processed_tokens", "supervised_tokens",
                                                      "wall_time_s", "tokens_per_s", "val_ce")}}


def evaluate_world_model(path: Path, n: int, progress: bool) -> dict:
    from cotdistill.evaluate.benchmarks import evaluate_model

    result = evaluate_model(str(path), "world", limit=n, progress=progress, max_new_tokens=320)
    return {"accuracy": result["accuracy"], "by_difficulty": result["by_difficulty"],
            "truncated": result["truncated_responses"], "n": result["n"]}


def build_world(out: str | Path, *, quick: bool = False, progress: bool = True,
                only: str | None = None) -> dict:
    """Build everything into ``out`` (tokenizer/, teacher/, student/, manifest.json); returns the manifest."""
    spec = QUICK if quick else FULL
    out = Path(out)
    work = out / "_work"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.time()
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() and only else {}
    if only is None or not (out / "tokenizer").exists():
        tok = build_tokenizer(spec, out / "tokenizer")
    else:
        from cotdistill.models import load_tokenizer

        tok = load_tokenizer(str(out / "tokenizer"))
    manifest.update({"world_seed": WORLD_SEED, "quick": quick, "vocab_size": len(tok),
                     "tokenizer": {"kind": "byte-level BPE, digits split", "records": spec.tokenizer_records}})
    models = manifest.setdefault("models", {})
    for name, style, mspec, seed in (("teacher", "teacher", spec.teacher, 1), ("student", "student", spec.student, 2)):
        if only not in (None, name):
            continue
        models[name] = train_world_model(name, style, mspec, spec, tok, out, work, seed, progress)
        models[name]["test"] = evaluate_world_model(out / name, spec.eval_records, progress)
        manifest_path.write_text(json.dumps(manifest, indent=2))
    manifest["build_seconds"] = round(time.time() - start, 1)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return manifest
